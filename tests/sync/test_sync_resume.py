"""A run stopped mid-way is resumed under the same run id: nothing lost, nothing doubled."""

from __future__ import annotations

import pytest

import sqltraits_kit.publishing.sync.publisher as sync_publisher
from sqltraits_kit.publishing.sync import history, sync
from tests.support.sync import assert_server_holds, make_client, make_table, server_profiles

N = 3_000
BATCH = 100
CONCURRENCY = 4


def _table(n: int = N) -> dict:
    return {"user_id": [f"u{i:05d}" for i in range(n)], "score": [i / n for i in range(n)]}


def test_an_interrupted_run_resumes_with_the_same_message_ids(
    duckdb_wh, unique_name, segment_server, fast_sleeps, monkeypatch
):
    make_table(duckdb_wh, unique_name, _table())
    # A progress call after every settled batch (not every 0.1 s), so the stop below lands at
    # 1,000 sent whatever the machine's speed; no slowed-down server needed.
    monkeypatch.setattr(sync_publisher, "_PROGRESS_EVERY", 0.0)
    client = make_client(segment_server, fast_sleeps, concurrency=CONCURRENCY)

    def stop_midway(p):
        if p.phase == "sending" and p.sent >= 1_000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sync(
            duckdb_wh,
            unique_name,
            client=client,
            batch_size=BATCH,
            commit_seconds=0,
            progress=stop_midway,
        )
    key = f"table:{unique_name}:identify"
    stopped = history(duckdb_wh, sync_key=key).iloc[0]
    assert stopped["status"] == "interrupted" and "KeyboardInterrupt" in stopped["error"]
    assert 1_000 <= stopped["sent"] < N

    segment_server.clear_faults()
    result = sync(duckdb_wh, unique_name, client=client, batch_size=BATCH, commit_seconds=0)
    client.close()
    assert result.run_id == stopped["run_id"] and result.attempt == 2 and result.resumed
    assert result.status == "succeeded" and result.sent == N
    assert result.new == N  # the run's plan, as first computed
    assert_server_holds(segment_server, duckdb_wh, unique_name)
    stats = segment_server.snapshot()
    assert stats["messages_accepted"] == N  # every row exactly once
    # Only the batches in flight when it stopped were sent again, with identical message ids.
    assert stats["duplicates"] <= 2 * CONCURRENCY * BATCH
    runs = history(duckdb_wh, sync_key=key)
    assert len(runs) == 1 and runs["status"].iloc[0] == "succeeded"
    assert runs["attempt"].iloc[0] == 2


def test_a_value_that_comes_back_within_a_resumed_run_is_not_dropped_as_a_duplicate(
    duckdb_wh, unique_name, segment_server, client
):
    """A -> B -> A across attempts of one run: the last A must get a new message id."""

    def stop_before_finishing(p):
        if p.phase == "finishing":
            raise RuntimeError("stopped")

    run_ids = set()
    for value in (1.0, 2.0, 1.0):
        make_table(duckdb_wh, unique_name, {"user_id": ["a", "b"], "score": [value, 9.0]})
        with pytest.raises(RuntimeError, match=r"^stopped$"):
            sync(duckdb_wh, unique_name, client=client, progress=stop_before_finishing)
        run_ids.add(history(duckdb_wh).iloc[0]["run_id"])
    assert len(run_ids) == 1  # one run, three attempts
    assert server_profiles(segment_server)["a"] == {"score": 1.0}
    stats = segment_server.snapshot()
    assert (stats["messages_accepted"], stats["duplicates"]) == (4, 0)
    final = sync(duckdb_wh, unique_name, client=client)
    # a, then b, then a's two later values: every acknowledged message of the run is counted
    assert final.attempt == 4 and final.sent == 4 and final.status == "succeeded"
