"""``sync()``'s own options and rules, one at a time: its defaults by what they do (when a group
of acknowledged rows is committed, how many failed batches in a row stop a run, whether a held
lease is waited for), the time limit, the progress it reports before sending, what a dry run is
handed, the sync key, the drift gate per destination, refusals, the lease, overlapping runs,
retries-only runs, the sequence numbers a run starts from, the run's records and its result.

The end-to-end sync tests pass most options explicitly and publish one table to one destination,
so mutation testing of ``engine.sync`` (benchmarks/MUTATION.md) showed all this could change
unseen. DuckDB and the stand-in server in this process; no sleeps (where time matters, the
publisher's clock is moved by the test).
"""

from __future__ import annotations

import time
import types
from collections import Counter

import pytest

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.publishing.segment.client import BatchResult
from sqltraits_kit.publishing.standin import Respond
from sqltraits_kit.publishing.sync import (
    SyncRefused,
    dry_run,
    failed_rows,
    history,
    rollback,
    source_summary,
    sync,
)
from sqltraits_kit.publishing.sync import lease as lz
from sqltraits_kit.publishing.sync import state as s
from sqltraits_kit.publishing.sync.provenance import provenance
from sqltraits_kit.publishing.sync.reports import SyncProgress
from sqltraits_kit.publishing.sync.runs import FAILED_TABLE
from sqltraits_kit.warehouse import connect
from tests.support.sync import (
    ledger_rows,
    make_client,
    make_table,
    publisher_clock,
    server_profiles,
    table_key,
    watching_client,
)


def _scores(n: int, bump: float = 0.0) -> dict:
    return {"user_id": [f"u{i:05d}" for i in range(n)], "score": [i + 0.5 + bump for i in range(n)]}


def _second_destination(server):
    """A client for the same stand-in under another host name: another destination."""
    return make_client(server, [], endpoint=server.url.replace("127.0.0.1", "localhost"))


def _delivered_groups(rows: list[dict]) -> list[int]:
    """How many delivered ledger rows each commit (sequence number) wrote, in order."""
    groups = Counter(row[s.SEQ] for row in rows if row[s.DELIVERED])
    return [groups[seq] for seq in sorted(groups)]


def _held_elsewhere(wh, name: str, client, *, ttl: float, **holder) -> None:
    """The lease of table ``name`` at ``client``'s destination, held by another live run."""
    lz.ensure_lease_table(wh)
    other = lz.Lease(wh, table_key(name), lz.client_destination(client), ttl=ttl, **holder)
    other.run_id = "other-run"
    assert other.heartbeat()


def test_acknowledged_rows_are_committed_in_groups_of_20_000_by_default(
    duckdb_wh, unique_name, segment_server, monkeypatch
):
    publisher_clock(monkeypatch)  # the clock stands still, so only the row count commits
    make_table(duckdb_wh, unique_name, _scores(20_001))
    client = watching_client(segment_server, lambda result: None)
    result = sync(duckdb_wh, unique_name, client=client)
    assert (result.sent, result.failed) == (20_001, 0)
    assert _delivered_groups(ledger_rows(duckdb_wh, unique_name, client)) == [20_000, 1]


def test_acknowledged_rows_are_committed_every_second_by_default(
    duckdb_wh, unique_name, segment_server, monkeypatch
):
    clock = publisher_clock(monkeypatch)
    make_table(duckdb_wh, unique_name, _scores(6))
    delivered: list[int] = []
    client = watching_client(segment_server, lambda result: None)
    steps = iter([0.5, 0.25, 0.25, 0.0, 0.0, 0.0])

    def after(result: BatchResult) -> None:
        delivered.append(sum(r[s.DELIVERED] for r in ledger_rows(duckdb_wh, unique_name, client)))
        clock[0] += next(steps)

    client.after = after
    sync(duckdb_wh, unique_name, client=client, batch_size=1)
    # the clock at each batch: 0, 0.5, 0.75, 1.0 (a commit of the four acknowledged), 1.0, 1.0
    assert delivered == [0, 0, 0, 4, 4, 4]


def test_a_run_stops_after_eight_failed_batches_in_a_row_by_default(
    duckdb_wh, unique_name, segment_server
):
    make_table(duckdb_wh, unique_name, _scores(20))
    segment_server.fail_every(1, Respond(400))
    client = watching_client(segment_server, lambda result: None)
    result = sync(duckdb_wh, unique_name, client=client, batch_size=1)
    assert len(client.results) == 8
    assert (result.sent, result.failed, result.unsent, result.status) == (0, 8, 12, "failed")
    assert result.error.startswith("stopped after 8 batches in a row failed")


def test_a_held_lease_is_refused_at_once_by_default(duckdb_wh, unique_name, segment_server):
    """Without ``wait`` a run does not wait for another live run's lease, however short."""
    make_table(duckdb_wh, unique_name, _scores(5))
    client = make_client(segment_server, [])
    _held_elsewhere(duckdb_wh, unique_name, client, ttl=2.0, host="elsewhere", pid=4242)
    with pytest.raises(lz.LeaseHeld, match=r"run other-run on host elsewhere \(pid 4242\)"):
        sync(duckdb_wh, unique_name, client=client)
    client.close()


def test_max_duration_is_checked_between_batches(duckdb_wh, unique_name, segment_server):
    make_table(duckdb_wh, unique_name, _scores(10))
    client = watching_client(segment_server, lambda result: None)
    result = sync(duckdb_wh, unique_name, client=client, batch_size=1, max_duration=1e-9)
    # the limit is past at the first check, after the first batch's result is recorded
    assert len(client.results) == 1
    assert (result.sent, result.unsent) == (1, 9)
    assert result.error.startswith("stopped at the run's time limit (--max-duration 1e-09 s")
    # the run's final record says the same
    record = history(duckdb_wh, sync_key=result.sync_key).iloc[0]
    assert (record["status"], record["sent"], record["requests"], record["error"]) == (
        "partial",
        1,
        1,
        result.error,
    )
    assert record["finished_at"] is not None and record["duration_s"] == result.duration_s
    with pytest.raises(ConfigError, match=r"^max_duration must be > 0 seconds, got 0$"):
        sync(duckdb_wh, unique_name, client=client, max_duration=0)


def test_progress_before_sending_names_the_phase_and_the_run(
    duckdb_wh, unique_name, segment_server
):
    make_table(duckdb_wh, unique_name, _scores(4))
    client = make_client(segment_server, [])
    reports: list[SyncProgress] = []
    started = time.perf_counter()
    result = sync(duckdb_wh, unique_name, client=client, progress=reports.append)
    took = time.perf_counter() - started
    checking, diffing, *rest = reports
    assert (checking.phase, checking.run_id, checking.total) == ("checking", None, 0)
    assert (diffing.phase, diffing.run_id, diffing.total) == ("diffing", result.run_id, 0)
    assert (rest[0].phase, rest[-1].phase) == ("sending", "done")
    # seconds from the call (the sending phases count from the publisher's start)
    assert 0 <= checking.elapsed <= diffing.elapsed <= took
    assert diffing.elapsed > 0  # the checks before it took some time
    assert 0 < result.send_seconds <= result.duration_s <= took
    client.close()


def test_a_dry_run_is_handed_retries_only_and_the_page_size(duckdb_wh, unique_name, segment_server):
    make_table(duckdb_wh, unique_name, _scores(6))
    client = make_client(segment_server, [])
    segment_server.inject(Respond(400))
    first = sync(duckdb_wh, unique_name, client=client, batch_size=2)
    assert (first.sent, first.failed) == (4, 2)
    make_table(duckdb_wh, unique_name, _scores(6, bump=1.0))  # every row changes
    options = {"client": client, "dry_run": True, "allow_drift": True}
    assert sync(duckdb_wh, unique_name, **options).rows == 6
    assert sync(duckdb_wh, unique_name, only_failed=True, **options).rows == 2
    with pytest.raises(ConfigError, match=r"^page_rows must be at least 1, got 0$"):
        sync(duckdb_wh, unique_name, page_rows=0, **options)
    client.close()


def test_publishing_without_a_client_or_to_a_read_only_warehouse_is_refused(tmp_path, unique_name):
    path = tmp_path / "ro.duckdb"
    wh = connect(f"duckdb:///{path}", create=True)
    make_table(wh, unique_name, _scores(3))
    with pytest.raises(
        ConfigError,
        match=r"^publishing needs a SegmentClient \(see make_client\), or dry_run=True$",
    ):
        sync(wh, unique_name)
    assert dry_run(wh, unique_name).rows == 3  # no client needed for a dry run
    wh.close()
    ro = connect(f"duckdb:///{path}", read_only=True)
    client = types.SimpleNamespace()  # refused before the client is used
    with pytest.raises(ConfigError) as info:
        sync(ro, unique_name, client=client)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"{ro.display_url} is open read-only; a publish records its state in the warehouse"
    )
    ro.close()


def test_the_sync_key_given_names_the_run_and_its_state(duckdb_wh, unique_name, segment_server):
    make_table(duckdb_wh, unique_name, _scores(3))
    client = make_client(segment_server, [])
    result = sync(duckdb_wh, unique_name, client=client, sync_key="scores-for-crm")
    assert result.sync_key == "scores-for-crm"
    # the checks it passed: the contract on 3 rows, no drift (nothing published before)
    assert result.verdicts.validation_ok and result.verdicts.validation.rows == 3
    assert (result.verdicts.drift, result.verdicts.published_profiles) == (None, 0)
    assert s.registration(duckdb_wh, "scores-for-crm") is not None
    assert s.registration(duckdb_wh, table_key(unique_name)) is None
    client.close()


def test_the_drift_gate_compares_with_what_this_destination_was_sent(
    duckdb_wh, unique_name, segment_server
):
    """Published to A, then a moved table to B: A is still gated against what A holds, not
    against the destination published to last."""
    a = make_client(segment_server, [])
    b = _second_destination(segment_server)
    make_table(duckdb_wh, unique_name, _scores(200))
    sync(duckdb_wh, unique_name, client=a)
    make_table(duckdb_wh, unique_name, _scores(200, bump=1_000.0))
    sync(duckdb_wh, unique_name, client=b, allow_drift=True)
    with pytest.raises(SyncRefused, match="drift over the threshold"):
        sync(duckdb_wh, unique_name, client=a)
    assert sync(duckdb_wh, unique_name, client=b).sent == 0  # B holds these values already
    a.close()
    b.close()


def test_a_refusal_names_every_problem(duckdb_wh, unique_name, segment_server):
    client = make_client(segment_server, [])
    make_table(duckdb_wh, unique_name, _scores(200))
    sync(duckdb_wh, unique_name, client=client)
    moved = _scores(200, bump=1_000.0)
    moved["user_id"][1] = moved["user_id"][0]  # and a duplicate identifier
    make_table(duckdb_wh, unique_name, moved)
    with pytest.raises(SyncRefused) as info:
        sync(duckdb_wh, unique_name, client=client)
    message = str(info.value)
    assert message.startswith(f"not published (table {unique_name}): the table breaks Segment's")
    assert "); drift over the threshold" in message
    client.close()


def test_a_waiting_run_takes_the_lease_once_it_lapses(duckdb_wh, unique_name, segment_server):
    make_table(duckdb_wh, unique_name, _scores(5))
    client = make_client(segment_server, [])
    _held_elsewhere(duckdb_wh, unique_name, client, ttl=0.5)
    assert sync(duckdb_wh, unique_name, client=client, wait=30).sent == 5
    client.close()


def test_the_lease_names_the_run_and_lives_for_lease_ttl(duckdb_wh, unique_name, segment_server):
    make_table(duckdb_wh, unique_name, _scores(5))
    client = make_client(segment_server, [])
    result = sync(duckdb_wh, unique_name, client=client, lease_ttl=30)
    leases = duckdb_wh.con.table(lz.LEASE_TABLE).to_pyarrow().to_pylist()
    held = [row for row in leases if row["state"] == "held" and row["run_id"] is not None]
    assert held and {row["run_id"] for row in held} == {result.run_id}
    assert {(row["expires_at"] - row["heartbeat_at"]).total_seconds() for row in held} == {30.0}
    client.close()


def test_source_summary_describes_the_source_as_resolved_with_the_options(duckdb_wh, unique_name):
    make_table(duckdb_wh, unique_name, {"account_id": ["a1", "a2"], "seats": [3.0, 4.0]})
    summary = source_summary(
        duckdb_wh,
        unique_name,
        kind="group",
        id_column="account_id",
        on_remove="keep",
        sync_key="accounts",
    )
    assert {k: summary[k] for k in ("sync_key", "source", "kind", "id_column", "on_remove")} == {
        "sync_key": "accounts",
        "source": f"table {unique_name}",
        "kind": "group",
        "id_column": "account_id",
        "on_remove": "keep",
    }
    assert summary["traits"] == ["seats"]


def test_retries_only_send_what_failed_in_an_earlier_run_at_this_destination(
    duckdb_wh, unique_name, segment_server
):
    """``only_failed`` ("send only rows that failed in earlier runs"): a row that failed once
    and was delivered by a later run is sent again when it changes; a row that never failed is
    not, and a destination where nothing failed gets nothing."""
    make_table(duckdb_wh, unique_name, _scores(2))
    a = make_client(segment_server, [], concurrency=1)
    segment_server.inject(Respond(400))
    first = sync(duckdb_wh, unique_name, client=a, batch_size=1)
    assert (first.sent, first.failed) == (1, 1)
    [failed] = failed_rows(duckdb_wh, run_id=first.run_id)["identifier"]
    assert sync(duckdb_wh, unique_name, client=a).sent == 1  # delivered now
    make_table(duckdb_wh, unique_name, _scores(2, bump=0.25))  # both change a little
    b = _second_destination(segment_server)
    at_b = sync(duckdb_wh, unique_name, client=b, only_failed=True, allow_drift=True)
    assert (at_b.rows, at_b.sent) == (0, 0)
    at_a = sync(duckdb_wh, unique_name, client=a, only_failed=True, allow_drift=True)
    assert (at_a.rows, at_a.sent) == (1, 1)
    held = server_profiles(segment_server)
    assert {i: v["score"] for i, v in held.items()} == {
        "u00000": 0.5 + (0.25 if failed == "u00000" else 0.0),
        "u00001": 1.5 + (0.25 if failed == "u00001" else 0.0),
    }
    a.close()
    b.close()


def test_overlapping_runs_keep_their_own_rows_to_send(duckdb_wh, unique_name, segment_server):
    """A lease is per sync key and destination, so two runs can overlap: one table to two
    destinations, or two tables to one. The rows each still has to send wait in a pending table
    of its own key and destination."""
    other_table = f"{unique_name}_other"
    make_table(duckdb_wh, unique_name, _scores(4))
    make_table(duckdb_wh, other_table, _scores(3))
    same_destination = make_client(segment_server, [])
    b = _second_destination(segment_server)
    during: list = []

    def after(result: BatchResult) -> None:
        if not during:  # after the first batch: a whole run to B, and one of another table
            during.append(sync(duckdb_wh, unique_name, client=b))
            during.append(sync(duckdb_wh, other_table, client=same_destination))

    a = watching_client(segment_server, after)
    result = sync(duckdb_wh, unique_name, client=a, batch_size=1, page_rows=1)
    assert (result.sent, result.failed) == (4, 0)
    assert [run.sent for run in during] == [4, 3]
    assert not duckdb_wh.has_table(s.pending_table_name(result.sync_key, result.destination))
    for client in (a, b, same_destination):
        client.close()


def test_a_run_in_progress_is_recorded_as_running_with_nothing_counted_yet(
    duckdb_wh, unique_name, segment_server
):
    make_table(duckdb_wh, unique_name, _scores(3))
    seen: list[dict] = []

    def after(result: BatchResult) -> None:
        if not seen:
            row = history(duckdb_wh, sync_key=table_key(unique_name)).iloc[0]
            seen.append(
                {k: row[k] for k in ("status", "rows", "new", "sent", "failed", "requests")}
            )

    client = watching_client(segment_server, after)
    # the first batch's result is handled before the hook: the record is still the plan's
    sync(duckdb_wh, unique_name, client=client, batch_size=1, commit_seconds=1e9)
    assert seen == [
        {"status": "running", "rows": 3, "new": 3, "sent": 0, "failed": 0, "requests": 0}
    ]
    client.close()


def test_a_rollback_run_records_the_run_it_restores(duckdb_wh, unique_name, segment_server):
    key = table_key(unique_name)
    client = make_client(segment_server, [])
    make_table(duckdb_wh, unique_name, _scores(4))
    first = sync(duckdb_wh, unique_name, client=client)
    make_table(duckdb_wh, unique_name, _scores(4, bump=0.25))
    sync(duckdb_wh, unique_name, client=client, allow_drift=True)
    result = rollback(duckdb_wh, key, first.run_id, client=client, allow_drift=True)
    assert result.sent == 4
    assert [
        (row["run_id"], row["sync_key"], row["destination"], row["rollback_of"])
        for row in provenance(duckdb_wh, result.run_id)
    ] == [(result.run_id, key, result.destination, first.run_id)]
    assert provenance(duckdb_wh, first.run_id) == []  # a table source carries no scoring runs
    client.close()


def test_failures_committed_apart_are_settled_by_the_next_runs_delivery(
    duckdb_wh, unique_name, segment_server
):
    """Failures are recorded at the sequence number of their commit, which the ledger never
    sees when no row was delivered; the next run numbers its rows after them, so its delivery
    settles every one of them."""
    key = table_key(unique_name)
    make_table(duckdb_wh, unique_name, _scores(6))
    client = make_client(segment_server, [], concurrency=1)
    segment_server.fail_every(1, Respond(400))
    # a commit after every batch: each failure at its own sequence number
    first = sync(duckdb_wh, unique_name, client=client, batch_size=1, commit_seconds=1e-9)
    assert first.failed == 6
    failed = failed_rows(duckdb_wh, run_id=first.run_id)
    seqs = duckdb_wh.con.table(FAILED_TABLE).to_pyarrow()["seq"].to_pylist()
    assert len(set(seqs)) >= 3 and len(failed) == 6  # the premise
    segment_server.clear_faults()
    second = sync(duckdb_wh, unique_name, client=client, batch_size=1)
    assert second.sent == 6
    assert failed_rows(duckdb_wh, sync_key=key).empty
    client.close()


def test_bad_identifiers_are_recorded_by_a_full_run_not_by_a_retries_only_run(
    duckdb_wh, unique_name, segment_server
):
    make_table(
        duckdb_wh, unique_name, {"user_id": ["a", "d", "d", ""], "score": [1.0, 2.0, 3.0, 4.0]}
    )
    client = make_client(segment_server, [])
    first = sync(duckdb_wh, unique_name, client=client, allow_invalid=True)
    assert (first.sent, first.failed) == (1, 3)
    retry = sync(duckdb_wh, unique_name, client=client, allow_invalid=True, only_failed=True)
    assert (retry.sent, retry.failed) == (0, 0)
    assert failed_rows(duckdb_wh, run_id=retry.run_id).empty
    again = sync(duckdb_wh, unique_name, client=client, allow_invalid=True)
    assert (again.sent, again.failed) == (0, 3)  # every full run says so again
    client.close()
