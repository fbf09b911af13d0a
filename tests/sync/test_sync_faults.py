"""5xx, 429, dropped connections, refused and undeliverable batches: the server ends exact."""

from __future__ import annotations

import pytest

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.publishing.segment import SegmentClient
from sqltraits_kit.publishing.segment.retry import RetryPolicy
from sqltraits_kit.publishing.standin import DropConnection, Respond
from sqltraits_kit.publishing.sync import failed_rows, history, sync
from tests.support.sync import assert_server_holds, make_client, make_table, server_profiles

N = 2_000


def _table(n: int = N, bump: int = 0) -> dict:
    return {
        "user_id": [f"u{i:05d}" for i in range(n)],
        "score": [(i * 7919 % n) / n + bump for i in range(n)],
        "segment": ["a" if i % 2 else "b" for i in range(n)],
    }


def test_transient_faults_end_with_exactly_the_tables_values(
    duckdb_wh, unique_name, segment_server, fast_sleeps
):
    make_table(duckdb_wh, unique_name, _table())
    segment_server.inject(
        Respond(500),
        Respond(503),
        Respond(429, headers={"Retry-After": "1"}),
        DropConnection(),
        DropConnection(process=True),  # stored, then the answer is lost: a duplicate follows
        Respond(502, process=True),
    )
    segment_server.fail_every(7, Respond(500))
    client = make_client(segment_server, fast_sleeps)
    result = sync(duckdb_wh, unique_name, client=client, batch_size=100)
    client.close()

    assert result.status == "succeeded" and (result.sent, result.failed) == (N, 0)
    assert result.requests > N // 100  # the retries are counted
    assert 1.0 in fast_sleeps  # Retry-After obeyed
    assert_server_holds(segment_server, duckdb_wh, unique_name)
    stats = segment_server.snapshot()
    assert stats["messages_accepted"] == N
    # only the two batches whose answer was lost arrived twice, and were dropped as duplicates
    assert stats["duplicates"] <= 2 * 100
    assert failed_rows(duckdb_wh, sync_key=result.sync_key).empty


def test_undeliverable_rows_are_recorded_and_retried_until_they_succeed(
    duckdb_wh, unique_name, segment_server, fast_sleeps
):
    make_table(duckdb_wh, unique_name, _table())
    # One request at a time, so the faults hit known batches: the first batch gives up after
    # its one retry, the second is refused outright.
    segment_server.inject(Respond(500), Respond(500), Respond(400))
    client = make_client(
        segment_server, fast_sleeps, retry=RetryPolicy(max_retries=1), concurrency=1
    )
    first = sync(duckdb_wh, unique_name, client=client, batch_size=100)
    assert first.status == "partial" and not first.ok
    assert (first.sent, first.failed) == (N - 200, 200)
    assert len(first.errors) == 2 and "HTTP 400" in " ".join(first.errors)

    failed = failed_rows(duckdb_wh, run_id=first.run_id)
    assert len(failed) == 200 and set(failed["attempts"]) == {1}
    assert failed["payload_bytes"].min() > 50
    reasons = " ".join(failed["reason"])
    assert "gave up after 2 requests" in reasons and "HTTP 400" in reasons
    outstanding = failed_rows(duckdb_wh, sync_key=first.sync_key)
    assert sorted(outstanding["identifier"]) == sorted(failed["identifier"])
    assert history(duckdb_wh, sync_key=first.sync_key)["failed"].iloc[0] == 200

    # Their values did not change; the next run sends them anyway — and fails again once.
    # Their delivery is unknown in the ledger (a 500 may have been applied): "uncertain".
    segment_server.inject(Respond(400))
    second = sync(duckdb_wh, unique_name, client=client, batch_size=100)
    assert (second.changed, second.uncertain, second.unchanged) == (200, 200, N - 200)
    assert (second.new, second.sent, second.failed) == (0, 100, 100)
    again = failed_rows(duckdb_wh, sync_key=first.sync_key)
    assert len(again) == 100 and set(again["attempts"]) == {2}

    third = sync(duckdb_wh, unique_name, client=client, batch_size=100)
    assert (third.sent, third.failed, third.status) == (100, 0, "succeeded")
    assert failed_rows(duckdb_wh, sync_key=first.sync_key).empty
    assert len(failed_rows(duckdb_wh, run_id=first.run_id)) == 200  # the record stays
    assert_server_holds(segment_server, duckdb_wh, unique_name)
    client.close()


def test_retry_failed_sends_only_the_failed_rows(
    duckdb_wh, unique_name, segment_server, fast_sleeps
):
    make_table(duckdb_wh, unique_name, _table(300))
    client = make_client(segment_server, fast_sleeps)
    segment_server.inject(Respond(400))
    first = sync(duckdb_wh, unique_name, client=client, batch_size=100)
    assert first.failed == 100
    make_table(duckdb_wh, unique_name, _table(300, bump=1))  # every row changes
    retry = sync(
        duckdb_wh, unique_name, client=client, batch_size=100, only_failed=True, allow_drift=True
    )
    assert (retry.sent, retry.failed, retry.rows) == (100, 0, 100)
    held = server_profiles(segment_server)
    retried = failed_rows(duckdb_wh, run_id=first.run_id)["identifier"]
    assert all(held[i]["score"] >= 1 for i in retried)
    assert sum(v["score"] >= 1 for v in held.values()) == 100
    # everything else still waits for a normal run
    rest = sync(duckdb_wh, unique_name, client=client, batch_size=100, allow_drift=True)
    assert (rest.changed, rest.sent) == (200, 200)
    assert_server_holds(segment_server, duckdb_wh, unique_name)
    client.close()


def test_a_refused_write_key_stops_the_run_with_a_config_error(
    duckdb_wh, unique_name, segment_server, fast_sleeps
):
    make_table(duckdb_wh, unique_name, _table())
    client = make_client(segment_server, fast_sleeps)
    bad = SegmentClient(
        "wk_wrong_key_0000000000",
        endpoint=segment_server.url,
        max_requests_per_second=None,
        max_events_per_second=None,
        concurrency=1,
    )
    with pytest.raises(ConfigError, match="refused the write key") as info:
        sync(duckdb_wh, unique_name, client=bad, batch_size=100)
    assert "wk_wrong_key" not in str(info.value)
    run = history(duckdb_wh).iloc[0]
    assert run["status"] == "failed" and run["sent"] == 0
    assert run["failed"] == 100  # only the refused batch, not every row of the table
    bad.close()
    # with the right key the next run delivers everything
    result = sync(duckdb_wh, unique_name, client=client, batch_size=100)
    assert result.sent == N
    assert_server_holds(segment_server, duckdb_wh, unique_name)
    client.close()


def test_a_run_stops_when_segment_keeps_failing(
    duckdb_wh, unique_name, segment_server, fast_sleeps
):
    make_table(duckdb_wh, unique_name, _table())
    segment_server.fail_every(1, Respond(503))
    client = make_client(segment_server, fast_sleeps, retry=RetryPolicy(max_retries=0))
    result = sync(duckdb_wh, unique_name, client=client, batch_size=100, max_consecutive_failures=3)
    assert result.status == "failed" and result.sent == 0
    assert result.failed == 300 and result.unsent == N - 300
    assert "batches in a row failed" in result.error
    segment_server.clear_faults()
    after = sync(duckdb_wh, unique_name, client=client, batch_size=100)
    assert after.sent == N
    assert_server_holds(segment_server, duckdb_wh, unique_name)
    client.close()
