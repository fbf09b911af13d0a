"""The engine's own rules, one at a time: a run's status, the error it records, which run it
resumes and what it counts from the earlier attempts, the run record, and how a send ends.

The sync tests reach these through whole runs, where a run is resumed once or twice with every
count filled in; mutation testing (benchmarks/MUTATION.md) showed what that leaves open. Here
the run history is written by hand and the send is driven by stand-ins for the publisher and the
client (no server, no sleeps). DuckDB, a file per test.
"""

from __future__ import annotations

import datetime as dt
import types
from typing import Any

import pytest

from sqltraits_kit.publishing.sync import engine as e
from sqltraits_kit.publishing.sync import runs as r
from sqltraits_kit.publishing.sync.limits import RunStopped
from sqltraits_kit.publishing.sync.publisher import Stop
from sqltraits_kit.publishing.sync.reports import SyncResult
from sqltraits_kit.warehouse import connect

KEY, DEST = "churn_scores", "segment:https://api.example/v1:abc"
T0 = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)


@pytest.fixture
def wh(tmp_path):
    wh = connect(f"duckdb:///{tmp_path / 'engine.duckdb'}", create=True)  # ":memory:" is shared
    yield wh
    wh.close()


SRC = types.SimpleNamespace(sync_key=KEY, label="scores", kind="identify", on_remove="keep")


def _row(run_id: str, status: str, seq: int, **fields: Any) -> dict[str, Any]:
    row = {
        "run_id": run_id,
        "sync_key": KEY,
        "source": "scores",
        "kind": "identify",
        "attempt": 1,
        "started_at": T0,
        "on_remove": "keep",
        "destination": DEST,
        "status": status,
        "recorded_at": T0 + dt.timedelta(seconds=seq),
        "event_seq": seq,
        "rows": 10,
        "new": 4,
        "changed": 3,
        "removed": 2,
        "unchanged": 1,
        "requests": 0,
    }
    return row | fields


@pytest.mark.parametrize(
    ("sent", "failed", "unsent", "status"),
    [
        (5, 0, 0, "succeeded"),
        (0, 0, 0, "succeeded"),  # nothing to send
        (5, 1, 0, "partial"),
        (5, 0, 1, "partial"),
        (1, 2, 3, "partial"),
        (0, 1, 0, "failed"),
        (0, 0, 1, "failed"),
    ],
)
def test_the_status_of_a_run(sent, failed, unsent, status):
    assert e._status(sent, failed, unsent) == status


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (RuntimeError("boom"), "RuntimeError: boom"),
        (RuntimeError("\n  boom\nat line 2\nat line 3"), "RuntimeError: boom"),
        (KeyboardInterrupt(), "KeyboardInterrupt"),
        (ValueError(" \n "), "ValueError"),
        (ValueError("x" * 600), "ValueError: " + "x" * 488),  # 500 characters in all
    ],
    ids=["one-line", "first-line", "no-message", "blank", "long"],
)
def test_the_error_recorded_is_the_type_and_the_first_line_at_most_500_characters(exc, text):
    assert e._safe_error(exc) == text
    assert len(e._safe_error(exc)) <= 500


def test_a_first_run_is_new_and_plans_from_its_own_counts(wh):
    run = e._Run.start_or_resume(wh, SRC, DEST)
    assert (run.attempt, run.plan, run.prior_requests) == (1, None, 0)
    assert run.base_row["started_at"].tzinfo is not None
    stamp = run.base_row["started_at"].strftime("%Y%m%dT%H%M%SZ")
    assert run.run_id.startswith(stamp + "_") and len(run.run_id) == len(stamp) + 9
    assert {k: v for k, v in run.base_row.items() if k not in ("run_id", "started_at")} == {
        "sync_key": KEY,
        "source": "scores",
        "kind": "identify",
        "attempt": 1,
        "on_remove": "keep",
        "destination": DEST,
    }
    counts = {"rows": 9, "new": 5, "changed": 2, "removed": 1, "unchanged": 1, "uncertain": 3}
    run.plan_from(counts)
    assert run.plan == {"rows": 9, "new": 5, "changed": 2, "removed": 1, "unchanged": 1}
    assert {k: run.base_row[k] for k in e._PLAN_KEYS} == run.plan


def test_a_finished_run_or_one_at_another_destination_is_not_resumed(wh):
    r.record_run(wh, _row("done", "succeeded", 1))
    r.record_run(wh, _row("elsewhere", "interrupted", 2, destination="segment:other"))
    run = e._Run.start_or_resume(wh, SRC, DEST)
    assert run.run_id not in ("done", "elsewhere") and run.attempt == 1


def test_an_unfinished_run_is_resumed_with_its_plan_start_and_the_requests_it_made(wh):
    later = T0 + dt.timedelta(hours=1)
    r.record_run(wh, _row("other", "succeeded", 1))
    r.record_run(wh, _row("run", "running", 2, requests=0))
    r.record_run(wh, _row("run", "interrupted", 3, requests=7))
    r.record_run(wh, _row("run", "running", 4, attempt=2, started_at=later, new=99, requests=3))
    r.record_run(wh, _row("run", "interrupted", 5, attempt=2, started_at=later, requests=5))
    run = e._Run.start_or_resume(wh, SRC, DEST)
    assert (run.run_id, run.attempt) == ("run", 3)
    assert run.base_row["started_at"] == T0  # the first attempt's start
    assert run.prior_requests == 12  # 7 + 5: a "running" row repeats what its attempt sent
    run.plan_from({"rows": 1, "new": 1, "changed": 0, "removed": 0, "unchanged": 0})
    assert {k: run.base_row[k] for k in e._PLAN_KEYS} == {
        "rows": 10,
        "new": 4,  # the plan of the first attempt, not the later rows' or this call's counts
        "changed": 3,
        "removed": 2,
        "unchanged": 1,
    }


def test_a_run_killed_before_it_recorded_an_end_is_resumed_from_its_one_row(wh):
    r.record_run(wh, _row("run", "running", 1, requests=5))  # kill -9: no "interrupted" row
    run = e._Run.start_or_resume(wh, SRC, DEST)
    assert (run.run_id, run.attempt, run.prior_requests) == ("run", 2, 0)
    assert run.plan["new"] == 4 and run.base_row["started_at"] == T0


def test_a_resumed_run_reads_missing_attempts_counts_and_requests_as_none_yet(wh):
    r.record_run(wh, _row("run", "interrupted", 1, attempt=None, requests=None, new=None))
    run = e._Run.start_or_resume(wh, SRC, DEST)
    assert (run.attempt, run.prior_requests) == (2, 0)
    run.plan_from({k: 5 for k in e._PLAN_KEYS})
    assert run.base_row["new"] == 0 and run.base_row["rows"] == 10


def test_the_run_record_appends_a_row_and_a_finished_one_has_its_duration(wh):
    run = e._Run(base_row=_row("run", "", 0, started_at=T0), plan=None, prior_requests=0)
    for k in ("status", "recorded_at", "event_seq"):
        del run.base_row[k]
    first = run.record(wh, "running", sent=0, failed=0, requests=0)
    last = run.record(wh, "succeeded", sent=4, failed=1, requests=2, error="e", finished=True)
    rows = r.run_rows(wh, "run")
    assert [x["status"] for x in rows] == ["running", "succeeded"]
    assert rows[0]["event_seq"] < rows[1]["event_seq"]
    assert (rows[0]["finished_at"], rows[0]["duration_s"]) == (None, None)
    assert (rows[1]["sent"], rows[1]["failed"], rows[1]["requests"], rows[1]["error"]) == (
        4,
        1,
        2,
        "e",
    )
    assert rows[1]["finished_at"] == rows[1]["recorded_at"]
    assert rows[1]["duration_s"] == last == (rows[1]["finished_at"] - T0).total_seconds()
    assert first == (rows[0]["recorded_at"] - T0).total_seconds() <= last


def test_the_result_reads_the_plan_the_diff_the_publisher_and_the_figures():
    base = _row("run", "", 0, attempt=2)
    run = e._Run(
        base_row=base, plan=dict.fromkeys(e._PLAN_KEYS, 1) | {"new": None}, prior_requests=5
    )
    pub = types.SimpleNamespace(failed=6, errors=["first", "second"])
    verdicts = object()
    result = e._result(
        run,
        SRC,
        {"uncertain": 7},
        pub,
        status="partial",
        sent=8,
        unsent=9,
        error="stopped",
        requests=10,
        duration=11.5,
        send_seconds=12.5,
        verdicts=verdicts,
    )
    assert result == SyncResult(
        run_id="run",
        sync_key=KEY,
        source="scores",
        kind="identify",
        status="partial",
        rows=1,
        new=0,
        changed=1,
        removed=1,
        unchanged=1,
        sent=8,
        failed=6,
        requests=10,
        duration_s=11.5,
        unsent=9,
        uncertain=7,
        destination=DEST,
        send_seconds=12.5,
        attempt=2,
        error="stopped",
        errors=("first", "second"),
    )
    assert result.verdicts is verdicts


# ------------------------------------------------------------------------------------- _send


class _Pub:
    """The publisher's side of a send: what was committed, and its tallies."""

    def __init__(self, *, commit_error: BaseException | None = None) -> None:
        self.commits, self.results, self.commit_error = 0, [], commit_error
        self.sent, self.failed, self.requests = 3, 2, 4

    def messages(self):
        return iter(())

    def on_result(self, result: Any) -> None:
        self.results.append(result)

    def commit(self) -> None:
        self.commits += 1
        if self.commit_error is not None:
            raise self.commit_error


class _Client:
    """Calls ``on_result`` with each of ``results``, then raises ``error`` if given."""

    def __init__(self, results=(), error: BaseException | None = None) -> None:
        self.results, self.error = list(results), error

    def send_batches(self, batches, *, on_result):
        for result in self.results:
            on_result(result)
        if self.error is not None:
            raise self.error


class _Record:
    """The run's record: each status written, with its fields (then ``error`` raised)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.error = error

    def record(self, wh, status, **fields):
        self.records.append((status, fields))
        if self.error is not None:
            raise self.error


def _send(client: _Client, pub: _Pub, run: _Record, checks=()):
    return e._send(None, run, pub, client, batch_size=2, checks=checks)


def test_a_send_that_ends_commits_and_returns_no_reason():
    pub, run, checked = _Pub(), _Record(), []
    client = _Client(results=["r1", "r2"])
    assert _send(client, pub, run, checks=(lambda: checked.append(len(pub.results)),)) is None
    assert (pub.results, pub.commits, run.records) == (["r1", "r2"], 1, [])
    assert checked == [1, 2]  # each check runs after its result is recorded


@pytest.mark.parametrize("stop", [Stop("too many failures"), RunStopped("lease lost")])
def test_a_stop_commits_what_was_acknowledged_and_is_returned(stop):
    pub, run = _Pub(), _Record()
    assert _send(_Client(results=["r1"], error=stop), pub, run) is stop
    assert (pub.commits, run.records) == (1, [])


def test_a_check_that_stops_the_run_stops_it_after_the_result_is_recorded():
    pub, run = _Pub(), _Record()

    def deadline():
        raise RunStopped("time is up")

    stop = _send(_Client(results=["r1", "r2"]), pub, run, checks=(deadline,))
    assert isinstance(stop, RunStopped) and stop.reason == "time is up"
    assert (pub.results, pub.commits) == (["r1"], 1)


@pytest.mark.parametrize(
    "error", [RuntimeError("network down\ntraceback"), KeyboardInterrupt()], ids=["error", "ctrl-c"]
)
def test_any_other_end_commits_records_the_run_interrupted_and_raises(error):
    pub, run = _Pub(), _Record()
    with pytest.raises(type(error)) as raised:
        _send(_Client(results=["r1"], error=error), pub, run)
    assert raised.value is error
    assert pub.commits == 1
    assert run.records == [
        (
            "interrupted",
            {
                "sent": 3,
                "failed": 2,
                "requests": 4,
                "error": e._safe_error(error),
                "finished": True,
            },
        )
    ]


def test_an_interrupted_run_is_recorded_even_when_its_commit_fails():
    pub, run = _Pub(commit_error=OSError("disk full")), _Record()
    with pytest.raises(RuntimeError, match=r"^network down$"):
        _send(_Client(error=RuntimeError("network down")), pub, run)
    assert pub.commits == 1
    assert [status for status, _ in run.records] == ["interrupted"]


def test_the_send_error_is_raised_even_when_recording_the_interruption_fails():
    pub, run = _Pub(), _Record(error=OSError("warehouse gone"))
    with pytest.raises(RuntimeError, match=r"^network down$"):
        _send(_Client(error=RuntimeError("network down")), pub, run)
    assert [status for status, _ in run.records] == ["interrupted"]


def test_a_commit_that_fails_after_a_clean_send_interrupts_the_run():
    pub, run = _Pub(commit_error=OSError("disk full")), _Record()
    with pytest.raises(OSError, match=r"^disk full$"):
        _send(_Client(results=["r1"]), pub, run)
    assert pub.commits == 2  # once after the send, once more on the way out
    assert run.records[0][1]["error"] == "OSError: disk full"
