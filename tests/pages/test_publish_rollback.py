"""The Publish page's rollback: pick an earlier run, dry run it, roll back."""

from __future__ import annotations

import pyarrow as pa

from sqltraits_kit.settings import Secret, Settings
from tests.support.segment import WRITE_KEY
from tests.support.sync import server_profiles

N = 100


def _write(wh, shift: float) -> None:
    scores = [i / N + (shift if i % 4 == 0 else 0.0) for i in range(N)]
    data = {"user_id": [f"u{i}" for i in range(N)], "score": scores}
    wh.con.create_table("scores", pa.table(data), overwrite=True)


def test_rollback_from_the_publish_page(page, duckdb_wh, tmp_path, segment_server):
    settings = Settings(
        db_url=duckdb_wh.url,
        models_dir=tmp_path / "models",
        segment_write_key=Secret(WRITE_KEY),
        segment_endpoint=segment_server.url,
        max_requests_per_second=0,
        max_events_per_second=0,
    )
    _write(duckdb_wh, 0.0)
    at = page("pages/publish.py", settings=settings).run()
    at.radio(key="publish_source_kind").set_value("Table").run()
    at.toggle(key="publish_any_table").set_value(True).run()
    at.selectbox(key="publish_table").select("scores").run()
    at.checkbox(key="publish_allow_drift").check().run()
    at.button(key="publish_button").click().run()
    held = server_profiles(segment_server)
    assert len(held) == N
    assert not [b for b in at.button if b.key == "publish_rollback"]  # one version: nothing to undo

    _write(duckdb_wh, 0.5)
    at.button(key="publish_button").click().run()
    assert not at.exception, at.exception
    assert server_profiles(segment_server) != held
    first = at.selectbox(key="publish_rollback_run").value  # the only earlier run

    at.button(key="publish_rollback_dry").click().run()
    assert not at.exception, at.exception
    assert any(f"**{N // 4:,}** messages" in m.value for m in at.markdown)

    at.button(key="publish_rollback").click().run()
    assert not at.exception, at.exception
    assert server_profiles(segment_server) == held
    assert any(f"{N // 4} sent" in s.value for s in at.success)
    history = next(d.value for d in at.dataframe if "status" in d.value.columns)
    assert history.iloc[0]["source"] == f"rollback of run {first}"
