"""The publisher's rules, seen from inside a run: what the ledger says after each batch.

Every row is in flight (unknown) before the first batch leaves; a row becomes delivered only
once Segment acknowledged it and the group was committed (every ``commit_rows`` rows); a failed
batch leaves its rows unknown and records each with its size, status and requests. A client
that calls a hook after the publisher handled each result reads the ledger at that moment: no
sleeps, no timing (``commit_seconds`` is set out of reach). DuckDB only: the ledger writes are
the same Ibis expressions on both backends (``test_sync_ledger.py`` runs both). Written for
the mutants of ``publisher.py`` the end-to-end sync tests let through (benchmarks/MUTATION.md).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest

import sqltraits_kit.publishing.sync.diff as sync_diff
import sqltraits_kit.publishing.sync.publisher as sync_publisher
from sqltraits_kit.errors import ConfigError
from sqltraits_kit.publishing.segment import SegmentClient
from sqltraits_kit.publishing.segment.client import BatchResult
from sqltraits_kit.publishing.segment.retry import RetryPolicy
from sqltraits_kit.publishing.standin import Respond
from sqltraits_kit.publishing.sync import failed_rows, sync
from sqltraits_kit.publishing.sync import runs as r
from sqltraits_kit.publishing.sync import state as s
from tests.support.segment import WRITE_KEY
from tests.support.sync import (
    Watching,
    ledger_rows,
    make_table,
    publisher_clock,
    server_profiles,
    watching_client,
)

NEVER = 1e9  # commit_seconds: only the row count commits


def _ids(result: BatchResult) -> list[str]:
    return [json.loads(m.data)["userId"] for m in result.batch.messages]


def _scores(n: int, value: float = 0.5) -> dict:
    return {"user_id": [f"u{i}" for i in range(n)], "score": [value + i for i in range(n)]}


def _watch(duckdb_wh, name: str, server, **options: Any):
    """A client whose hook records, after each batch, its ids and the run's ledger rows."""
    seen: list[tuple[list[str], list[dict[str, Any]]]] = []
    client = watching_client(server, lambda result: None, **options)
    client.after = lambda result: seen.append((_ids(result), ledger_rows(duckdb_wh, name, client)))
    return client, seen


def test_rows_are_in_flight_before_the_first_batch_and_delivered_in_committed_groups(
    duckdb_wh, unique_name, segment_server
):
    make_table(duckdb_wh, unique_name, _scores(10))
    client, seen = _watch(duckdb_wh, unique_name, segment_server)
    result = sync(
        duckdb_wh, unique_name, client=client, batch_size=2, commit_rows=4, commit_seconds=NEVER
    )
    assert (result.sent, result.failed) == (10, 0)
    assert len(seen) == 5

    unknown = [r for r in seen[0][1] if not r[s.DELIVERED]]
    # Before the first answer: all ten rows, as they are sent, written once as unknown.
    assert sorted(r["user_id"] for r in unknown) == sorted(f"u{i}" for i in range(10))
    assert {r["score"] for r in unknown} == {0.5 + i for i in range(10)}
    assert {r[s.RUN_ID] for r in unknown} == {result.run_id}
    assert {r[s.REMOVED] for r in unknown} == {False}
    assert len({r[s.SEQ] for r in unknown}) == 1
    first_seq = unknown[0][s.SEQ]

    delivered = [[r for r in ledger if r[s.DELIVERED]] for _, ledger in seen]
    # commit_rows=4: nothing after one batch of 2, the first two batches after the second...
    assert [len(d) for d in delivered] == [0, 4, 4, 8, 8]
    assert all(len(ledger) == 10 + len(d) for (_, ledger), d in zip(seen, delivered, strict=True))
    sent_first = seen[0][0] + seen[1][0]
    assert sorted(r["user_id"] for r in delivered[1]) == sorted(sent_first)
    # ... each commit at the next sequence number, with the values sent and the same run id.
    assert {r[s.SEQ] for r in delivered[1]} == {first_seq + 1}
    assert {r[s.SEQ] for r in delivered[3]} == {first_seq + 1, first_seq + 2}
    assert {r[s.RUN_ID] for r in delivered[3]} == {result.run_id}
    assert {r["score"] for r in delivered[1]} == {0.5 + int(i[1:]) for i in sent_first}
    # The last batch (2 rows, under commit_rows) is committed when the send ends.
    latest = s.latest_state(duckdb_wh, s.state_table_name(result.sync_key, result.destination))
    assert latest.filter(latest[s.DELIVERED]).count().execute() == 10


def test_a_commit_at_exactly_commit_rows(duckdb_wh, unique_name, segment_server):
    make_table(duckdb_wh, unique_name, _scores(6))
    client, seen = _watch(duckdb_wh, unique_name, segment_server)
    sync(duckdb_wh, unique_name, client=client, batch_size=3, commit_rows=3, commit_seconds=NEVER)
    assert [sum(r[s.DELIVERED] for r in ledger) for _, ledger in seen] == [3, 6]


def test_a_removed_profile_is_in_flight_as_removed(duckdb_wh, unique_name, segment_server):
    make_table(duckdb_wh, unique_name, _scores(3))
    client, seen = _watch(duckdb_wh, unique_name, segment_server)
    sync(duckdb_wh, unique_name, client=client, commit_seconds=NEVER)
    make_table(duckdb_wh, unique_name, _scores(2))  # u2 leaves: its score goes null
    seen.clear()
    again = sync(duckdb_wh, unique_name, client=client, commit_seconds=NEVER, allow_drift=True)
    assert (again.removed, again.sent) == (1, 1)
    [(ids, ledger)] = seen
    assert ids == ["u2"]
    mine = [r for r in ledger if r[s.RUN_ID] == again.run_id]
    assert [(r["user_id"], r["score"], r[s.REMOVED], r[s.DELIVERED]) for r in mine] == [
        ("u2", None, True, False)
    ]


def test_a_failed_batch_stays_unknown_and_records_each_row(duckdb_wh, unique_name, segment_server):
    make_table(duckdb_wh, unique_name, _scores(4))
    segment_server.inject(Respond(503), Respond(503))  # the first batch: both of its requests
    client, seen = _watch(duckdb_wh, unique_name, segment_server, retry=RetryPolicy(max_retries=1))
    result = sync(
        duckdb_wh, unique_name, client=client, batch_size=2, commit_rows=2, commit_seconds=NEVER
    )
    assert (result.sent, result.failed, result.requests) == (2, 2, 3)
    failed_ids = seen[0][0]
    failed = failed_rows(duckdb_wh, run_id=result.run_id).sort_values("identifier")
    assert list(failed["identifier"]) == sorted(failed_ids)
    assert set(failed["http_status"]) == {503}
    assert set(failed["requests"]) == {2}
    assert set(failed["reason"]) == {
        'gave up after 2 requests: HTTP 503 Service Unavailable: {"code": "injected", '
        '"message": "fault"}'
    }
    sizes = sorted(m.size for m in client.results[0].batch.messages)
    assert sorted(failed["payload_bytes"]) == sizes
    # the failed rows' ledger rows stay unknown; the second batch's are delivered
    ledger = seen[-1][1]
    delivered = {r["user_id"] for r in ledger if r[s.DELIVERED]}
    assert delivered == set(seen[1][0]) and not delivered & set(failed_ids)
    # the failures carry the sequence number of the commit that recorded them
    first_seq = min(r[s.SEQ] for r in ledger)
    recorded = duckdb_wh.con.table(r.FAILED_TABLE).to_pyarrow().to_pylist()
    assert {x["seq"] for x in recorded if x["run_id"] == result.run_id} == {first_seq + 1}


def _one_a_batch(duckdb_wh, name: str, client: SegmentClient, limit: int) -> Any:
    """Publish ``name`` one row a batch, stopping after ``limit`` failed batches in a row."""
    return sync(
        duckdb_wh,
        name,
        client=client,
        batch_size=1,
        commit_seconds=NEVER,
        max_consecutive_failures=limit,
    )


@pytest.mark.parametrize("limit", [2, 3])
def test_a_success_between_failures_resets_the_count(duckdb_wh, unique_name, segment_server, limit):
    make_table(duckdb_wh, unique_name, _scores(8))
    segment_server.fail_every(2, Respond(503))  # batches 2, 4, 6, 8 fail; never two in a row
    client, seen = _watch(duckdb_wh, unique_name, segment_server)
    result = _one_a_batch(duckdb_wh, unique_name, client, limit)
    assert (result.sent, result.failed, result.error, len(seen)) == (4, 4, None, 8)


def test_the_run_stops_at_exactly_max_consecutive_failures(duckdb_wh, unique_name, segment_server):
    make_table(duckdb_wh, unique_name, _scores(8))
    segment_server.fail_every(1, Respond(503))
    client, seen = _watch(duckdb_wh, unique_name, segment_server)
    result = _one_a_batch(duckdb_wh, unique_name, client, 2)
    assert (result.sent, result.failed, result.unsent, len(seen)) == (0, 2, 6, 2)
    assert result.error == (
        "stopped after 2 batches in a row failed (last: gave up after 1 requests: HTTP 503 "
        'Service Unavailable: {"code": "injected", "message": "fault"}); '
        "the rows not sent are sent by the next run"
    )


def test_pages_are_freed_once_settled_and_a_late_failure_still_names_its_row(
    duckdb_wh, unique_name, segment_server, monkeypatch
):
    """Two rows a page, one a batch, a commit after every acknowledgement: each page is freed
    as soon as both its rows are settled, never before (the second row of every page fails
    and is recorded under its identifier, read from the page)."""
    make_table(duckdb_wh, unique_name, _scores(10))
    pages: list[weakref.ref] = []
    read_page = sync_diff.read_page

    def tracked(*args: Any, **kwargs: Any) -> Any:
        page = read_page(*args, **kwargs)
        pages.append(weakref.ref(page))
        return page

    monkeypatch.setattr(sync_diff, "read_page", tracked)
    segment_server.fail_every(2, Respond(503))  # the second row of every page
    live: list[int] = []
    client = watching_client(
        segment_server, lambda result: live.append(sum(p() is not None for p in pages))
    )
    result = sync(
        duckdb_wh,
        unique_name,
        client=client,
        batch_size=1,
        page_rows=2,
        commit_rows=1,
        commit_seconds=NEVER,
    )
    assert (result.sent, result.failed) == (5, 5)
    ids = [_ids(x)[0] for x in client.results]
    failed = failed_rows(duckdb_wh, run_id=result.run_id)
    assert sorted(failed["identifier"]) == sorted(ids[1::2])
    assert len(pages) == 5
    # the page being encoded and the one whose rows are in flight, not the ones settled
    assert max(live) <= 2, live


def test_a_message_over_the_size_limit_is_recorded_as_failed_with_its_size(
    duckdb_wh, unique_name, segment_server
):
    make_table(duckdb_wh, unique_name, {"user_id": ["a", "b"], "note": ["x", "y" * 40_000]})
    client = watching_client(segment_server, lambda result: None)
    result = sync(duckdb_wh, unique_name, client=client, allow_invalid=True)
    assert (result.sent, result.failed) == (1, 1)
    failed = failed_rows(duckdb_wh, run_id=result.run_id)
    assert list(failed["identifier"]) == ["b"]
    [rejection] = [x for r in client.results for x in r.batch.rejected]
    assert failed["payload_bytes"][0] == rejection.message.size > 40_000
    assert failed["reason"][0] == rejection.reason
    assert "the limit is 32768" in rejection.reason
    assert server_profiles(segment_server) == {"a": {"note": "x"}}


def test_commits_and_progress_follow_the_clock_at_exactly_their_intervals(
    duckdb_wh, unique_name, segment_server, monkeypatch
):
    """A clock moved by the test between batches: a commit at exactly ``commit_seconds`` after
    the last one, a progress report at exactly ``_PROGRESS_EVERY`` after the last one, and
    neither while the clock stands still."""
    clock = publisher_clock(monkeypatch, 100.0)
    monkeypatch.setattr(sync_publisher, "_PROGRESS_EVERY", 0.5)
    make_table(duckdb_wh, unique_name, _scores(6))
    steps = iter([0.5, 0.0, 0.5, 0.0, 0.5, 0.0])
    delivered: list[int] = []
    client = watching_client(segment_server, lambda result: None)

    def after(result: BatchResult) -> None:
        delivered.append(sum(r[s.DELIVERED] for r in ledger_rows(duckdb_wh, unique_name, client)))
        clock[0] += next(steps)

    client.after = after
    reports: list[Any] = []
    sync(
        duckdb_wh,
        unique_name,
        client=client,
        batch_size=1,
        commit_rows=1_000,
        commit_seconds=1.0,
        progress=reports.append,
    )
    # the clock at each batch: 100, 100.5, 100.5, 101 (a commit: 1.0 s), 101, 101.5
    assert delivered == [0, 0, 0, 4, 4, 4]
    sending = [p.sent for p in reports if p.phase == "sending"]
    assert sending == [0, 2, 4, 6]  # before the send, then at 100.5, 101 and 101.5


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_stops_the_run_at_the_first_batch(
    duckdb_wh, unique_name, segment_server, status
):
    make_table(duckdb_wh, unique_name, _scores(6))
    segment_server.inject(Respond(status))
    client = watching_client(segment_server, lambda result: None)
    with pytest.raises(ConfigError) as info:
        sync(duckdb_wh, unique_name, client=client, batch_size=2)
    assert len(client.results) == 1
    assert str(info.value).startswith(
        f"Segment refused the write key (HTTP {status}): check SEGMENT_WRITE_KEY and the "
        "region/endpoint (run "
    )
    assert str(info.value).endswith(": 0 sent, 2 failed)")


def test_a_failed_row_between_two_acknowledged_ones_stays_unknown(
    duckdb_wh, unique_name, segment_server
):
    make_table(duckdb_wh, unique_name, _scores(3))
    segment_server.fail_every(2, Respond(503))  # the middle row's batch
    client, seen = _watch(duckdb_wh, unique_name, segment_server)
    result = sync(
        duckdb_wh, unique_name, client=client, batch_size=1, commit_rows=2, commit_seconds=NEVER
    )
    assert (result.sent, result.failed) == (2, 1)
    [first], [middle], [last] = (ids for ids, _ in seen)
    # one commit of the first and the last row: the row between them is not delivered
    delivered = sorted(r["user_id"] for r in seen[-1][1] if r[s.DELIVERED])
    assert delivered == sorted([first, last])
    assert list(failed_rows(duckdb_wh, run_id=result.run_id)["identifier"]) == [middle]


def test_message_ids_belong_to_their_destination(duckdb_wh, unique_name, segment_server):
    # The same rows published to two destinations (one server under two names): each
    # destination has its own message-id namespace, so Segment's dedupe of one can never
    # swallow a message meant for the other, and a re-send to one keeps that one's ids.
    make_table(duckdb_wh, unique_name, _scores(3))
    sent: list[dict[str, str]] = []
    for url in (segment_server.url, segment_server.url.replace("127.0.0.1", "localhost")):
        client = Watching(
            WRITE_KEY,
            endpoint=url,
            max_requests_per_second=None,
            max_events_per_second=None,
            concurrency=1,
            sleep=lambda _: None,
            retry=RetryPolicy(max_retries=0),
            after=lambda result: None,
        )
        result = sync(duckdb_wh, unique_name, client=client, commit_seconds=NEVER)
        assert result.sent == 3
        messages = [json.loads(m.data) for res in client.results for m in res.batch.messages]
        sent.append({m["userId"]: m["messageId"] for m in messages})
    first, second = sent
    assert first.keys() == second.keys() == {"u0", "u1", "u2"}
    assert all(first[k] != second[k] for k in first)


def _refused_first_page(duckdb_wh, name: str) -> None:
    """Six rows, two a page: the first page's two rows carry binary values, which the payload
    layer refuses (nothing of that page is ever sent); the other four are plain."""
    blobs = pa.array([b"x", b"y", None, None, None, None], type=pa.binary())
    make_table(duckdb_wh, name, pa.table({"user_id": [f"u{i}" for i in range(6)], "blob": blobs}))


def _tracking_pages(
    monkeypatch, at_read: Callable[[list[weakref.ref]], Any]
) -> list[tuple[Any, list[str]]]:
    """Calls ``at_read(pages)`` before each page is read (``pages``: weak references to the
    pages read so far); returns, per page, that answer and the page's identifiers."""
    seen: list[tuple[Any, list[str]]] = []
    pages: list[weakref.ref] = []
    read_page = sync_diff.read_page

    def tracked(*args: Any, **kwargs: Any) -> Any:
        before = at_read(pages)
        page = read_page(*args, **kwargs)
        seen.append((before, page.column("_id").to_pylist()))
        pages.append(weakref.ref(page))
        return page

    monkeypatch.setattr(sync_diff, "read_page", tracked)
    return seen


def _sync_two_a_page(duckdb_wh, name: str, server, *, commit_rows: int) -> None:
    """Publish the refused-first-page table two rows a page, two a batch: 4 sent, 2 refused."""
    client = watching_client(server, lambda result: None)
    result = sync(
        duckdb_wh,
        name,
        client=client,
        allow_invalid=True,
        page_rows=2,
        batch_size=2,
        commit_rows=commit_rows,
        commit_seconds=NEVER,
    )
    assert (result.sent, result.failed) == (4, 2)


def test_a_page_whose_every_row_was_refused_is_freed_at_once(
    duckdb_wh, unique_name, segment_server, monkeypatch
):
    # No commit before the end (commit_rows out of reach): only the publisher's own rule can
    # free the refused page, as no batch and so no result will ever refer to it.
    _refused_first_page(duckdb_wh, unique_name)
    seen = _tracking_pages(monkeypatch, lambda pages: [p() is not None for p in pages])
    _sync_two_a_page(duckdb_wh, unique_name, segment_server, commit_rows=1_000)
    assert [ids for _, ids in seen] == [["u0", "u1"], ["u2", "u3"], ["u4", "u5"]]
    # when the third page is read, the first (all refused) is gone; the second, being sent,
    # is still held by the run
    assert seen[2][0] == [False, True]


def test_refused_rows_are_committed_at_exactly_commit_rows(
    duckdb_wh, unique_name, segment_server, monkeypatch
):
    _refused_first_page(duckdb_wh, unique_name)

    def recorded() -> int:
        if not duckdb_wh.has_table(r.FAILED_TABLE):
            return 0
        return int(duckdb_wh.con.table(r.FAILED_TABLE).count().execute())

    seen = _tracking_pages(monkeypatch, lambda _pages: recorded())
    _sync_two_a_page(duckdb_wh, unique_name, segment_server, commit_rows=2)
    # the first page's two refusals reach commit_rows: recorded before the second page is read
    assert [count for count, _ in seen] == [0, 2, 2]
