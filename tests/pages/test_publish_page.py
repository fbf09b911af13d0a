"""The Publish page: settings, verdicts, dry run, publish with progress, history, retry."""

from __future__ import annotations

import pyarrow as pa
import pytest

from sqltraits_kit.publishing.standin import Respond
from sqltraits_kit.settings import Secret, Settings
from tests.support.segment import WRITE_KEY

N = 600


@pytest.fixture
def scores(duckdb_wh):
    def write(shift: float = 0.0) -> None:
        data = {"user_id": [f"u{i}" for i in range(N)], "score": [i / N + shift for i in range(N)]}
        duckdb_wh.con.create_table("scores", pa.table(data), overwrite=True)

    write()
    return write


@pytest.fixture
def publish_page(page, duckdb_wh, tmp_path, segment_server):
    def open_page():
        settings = Settings(
            db_url=duckdb_wh.url,
            models_dir=tmp_path / "models",
            segment_write_key=Secret(WRITE_KEY),
            segment_endpoint=segment_server.url,
            max_requests_per_second=0,
            max_events_per_second=0,
        )
        at = page("pages/publish.py", settings=settings).run()
        at.radio(key="publish_source_kind").set_value("Table").run()
        at.toggle(key="publish_any_table").set_value(True).run()  # scores is no output table
        at.selectbox(key="publish_table").select("scores").run()
        return at

    return open_page


def _frame(at, column: str):
    """The dataframe that has ``column`` (history: status; failed rows: reason)."""
    frames = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(frames) == 1, [list(d.value.columns) for d in at.dataframe]
    return frames[0]


def _texts(at) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success")
             for e in getattr(at, kind)]  # fmt: skip
    return "\n".join(str(p) for p in parts)


def test_without_a_write_key_the_local_test_server_is_the_default_and_a_publish_shows_it(
    page, scores
):
    at = page("pages/publish.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="publish_destination").value == "local"
    assert any("nothing leaves this machine" in i.value for i in at.info)
    at.radio(key="publish_source_kind").set_value("Table").run()
    at.toggle(key="publish_any_table").set_value(True).run()
    at.selectbox(key="publish_table").select("scores").run()
    assert not at.button(key="publish_button").disabled
    at.button(key="publish_button").click().run()
    assert not at.exception, at.exception
    assert any("succeeded: 600 sent" in x.value for x in at.success)
    held = [d.value for d in at.dataframe if "identifier" in d.value.columns]
    # the local server lives as long as the process: other tests' profiles may be there too
    assert len(held) == 1 and {f"u{i}" for i in range(N)} <= set(held[0]["identifier"])
    row = held[0].set_index("identifier").loc["u42"]
    assert row["score"] == 42 / N
    assert "Segment would now hold" in _texts(at)


def test_without_a_write_key_production_explains_and_publishing_is_disabled(page, scores):
    at = page("pages/publish.py").run()
    at.selectbox(key="publish_destination").select("production").run()
    assert not at.exception, at.exception
    assert any("No write key" in w.value for w in at.warning)
    at.radio(key="publish_source_kind").set_value("Table").run()
    at.toggle(key="publish_any_table").set_value(True).run()
    at.selectbox(key="publish_table").select("scores").run()
    assert at.button(key="publish_button").disabled
    # checks and the dry run work without a key
    at.button(key="publish_dry_button").click().run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"New": f"{N}", "Changed": "0", "Removed": "0", "Unchanged": "0"}
    assert "Would send **600** messages in **2** requests" in _texts(at)
    assert any(c.language == "json" and '"type":"identify"' in c.value for c in at.code)


def test_dry_run_then_publish_then_history(publish_page, scores, segment_server):
    at = publish_page()
    assert not at.exception, at.exception
    text = _texts(at)
    assert "••••6789" in text and WRITE_KEY not in text  # masked
    assert "table:scores:identify" in text
    assert any("No publish runs" in i.value for i in at.info)

    at.button(key="publish_dry_button").click().run()
    assert any("Validation: Segment's SQL-trait contract holds" in s.value for s in at.success)
    assert any("nothing published under this sync key yet" in i.value for i in at.info)

    at.button(key="publish_button").click().run()
    assert not at.exception, at.exception
    assert any("succeeded: 600 sent, 0 failed" in s.value for s in at.success)
    assert segment_server.snapshot()["messages_accepted"] == N
    assert segment_server.user_traits("u42") == {"score": 42 / N}
    runs = _frame(at, "status")
    assert list(runs["status"]) == ["succeeded"] and list(runs["sent"]) == [f"{N:,}"]
    # narrow and in the one format (issue 17 item 9): no sideways scroll, no raw timestamps
    assert list(runs.columns) == [
        "started", "source", "status", "sent", "failed", "changes", "time", "run", "error"
    ]  # fmt: skip
    assert list(runs["changes"]) == [f"{N:,} new · 0 changed · 0 removed"]
    assert runs["started"].str.endswith(" UTC").all() and list(runs["error"]) == ["—"]
    assert at.get("progress")  # the live progress bar was drawn

    # the next dry run finds nothing to send
    at.button(key="publish_dry_button").click().run()
    assert {m.label: m.value for m in at.metric}["Unchanged"] == f"{N}"
    assert any("Drift: max PSI" in s.value for s in at.success)


def test_failed_rows_are_listed_and_retried(publish_page, scores, segment_server):
    segment_server.inject(Respond(400))  # one of the two batches is refused
    at = publish_page()
    at.button(key="publish_button").click().run()
    assert not at.exception, at.exception
    done = at.session_state["publish_result"]
    # which of the two batches the refusal hit depends on which request arrived first
    assert done["status"] == "partial" and done["failed"] in (100, 500)
    assert done["sent"] + done["failed"] == N
    shown = f"partial: {done['sent']} sent, {done['failed']} failed"
    assert any(shown in w.value for w in at.warning)
    failed = _frame(at, "reason")
    assert len(failed) == done["failed"] and set(failed["attempts"]) == {1}

    at.button(key="publish_retry").click().run()
    assert not at.exception, at.exception
    retried = f"succeeded: {done['failed']} sent, 0 failed"
    assert any(retried in s.value for s in at.success)
    assert any("No failed rows waiting" in i.value for i in at.info)
    assert segment_server.snapshot()["messages_accepted"] == N


def test_drift_refuses_until_the_override_is_ticked(publish_page, scores, segment_server):
    at = publish_page()
    at.button(key="publish_button").click().run()
    scores(shift=5.0)
    at.button(key="publish_dry_button").click().run()
    assert any("over the threshold" in e.value for e in at.error)
    at.button(key="publish_button").click().run()
    assert not at.exception, at.exception
    assert any("not published" in e.value and "--allow-drift" in e.value for e in at.error)
    assert segment_server.snapshot()["messages_accepted"] == N
    at.checkbox(key="publish_allow_drift").check().run()
    at.button(key="publish_button").click().run()
    assert any("600 changed" in s.value for s in at.success)
    assert segment_server.snapshot()["messages_accepted"] == 2 * N


def test_before_scoring_the_page_sends_the_user_to_score_and_history_still_shows(page):
    at = page("pages/publish.py").run()
    assert not at.exception, at.exception
    # the default trait set reads churn_traits, which the demo sample does not have yet: an
    # empty state that says what to do, not an error
    assert not at.error, [e.value for e in at.error]
    assert any("`churn_traits`" in i.value and "Score profiles first" in i.value for i in at.info)
    assert not {"publish_dry_button", "publish_button"} & {b.key for b in at.button}
    assert any("No publish runs" in i.value for i in at.info)


def test_the_drift_threshold_chosen_on_the_preview_is_the_one_in_use(
    page,
    duckdb_wh,
    tmp_path,
    segment_server,
):
    from tests.support.traits import run_rows, write_run

    settings = Settings(
        db_url=duckdb_wh.url,
        models_dir=tmp_path / "models",
        segment_write_key=Secret(WRITE_KEY),
        segment_endpoint=segment_server.url,
        max_requests_per_second=0,
        max_events_per_second=0,
    )
    write_run(duckdb_wh, "churn_traits", run_rows(2_000, seed=1, run_id="r1", day=1))
    at = page("pages/publish.py", settings=settings).run()
    assert at.selectbox(key="publish_traitset").value == "churn.toml"
    at.button(key="publish_dry_button").click().run()
    assert {m.label: m.value for m in at.metric}["New"] == "2,000"
    at.button(key="publish_button").click().run()
    assert not at.exception, at.exception
    assert any("succeeded: 2,000 sent" in s.value for s in at.success)
    # the dry run said 2,000 new: out of date once published, so it is not shown any more
    assert not at.metric
    assert any("Published: run the checks again" in c.value for c in at.caption)

    # churn_probability shifts by PSI ~0.24: over churn.toml's 0.2, under the Preview's 0.3
    write_run(duckdb_wh, "churn_traits", run_rows(2_000, seed=2, run_id="r2", day=2, shift=0.08))
    at.button(key="publish_dry_button").click().run()
    assert any("over the threshold 0.2" in e.value for e in at.error)
    at.session_state["preview_thresholds"] = {"churn": 0.3}  # what the Preview's slider stores
    at.run()
    assert any("drift threshold 0.3, set on the Preview page" in c.value for c in at.caption)
    at.button(key="publish_dry_button").click().run()
    assert any("(threshold 0.3)" in s.value for s in at.success)
    at.button(key="publish_button").click().run()  # no override needed
    assert not at.exception, at.exception
    assert any("succeeded: " in s.value and "changed" in s.value for s in at.success)


def test_a_table_whose_identifier_segment_does_not_know_is_blocked(page):
    at = page("pages/publish.py").run()
    # no trait set can be published yet (nothing scored) and no output table: nothing is
    # offered by default, least of all an input table
    at.radio(key="publish_source_kind").set_value("Table").run()
    assert "publish_table" not in {s.key for s in at.selectbox}
    at.toggle(key="publish_any_table").set_value(True).run()
    at.selectbox(key="publish_table").select("accounts").run()
    assert not at.exception, at.exception
    (error,) = at.error
    assert "is not a Segment identifier" in error.value
    assert "publish_dry_button" not in {b.key for b in at.button}  # blocked, not a caption


def test_the_table_chosen_on_the_preview_is_the_one_to_publish(page, scores):
    at = page("app.py").run()
    at.switch_page("pages/preview.py").run()
    at.radio(key="preview_mode").set_value("Output table").run()
    at.toggle(key="preview_any_table").set_value(True).run()
    at.selectbox(key="preview_table").select("scores").run()
    at.switch_page("pages/publish.py").run()
    assert not at.exception, at.exception
    assert at.radio(key="publish_source_kind").value == "Table"
    assert at.selectbox(key="publish_table").value == "scores"
    assert at.selectbox(key="publish_id_column").value == "user_id"
