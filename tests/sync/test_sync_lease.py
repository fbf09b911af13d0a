"""One run per sync key and destination at a time (issue 11, fault 4), and the run deadline.

Runs race in threads with their own connections (both backends: on DuckDB that is the only way
two runs can share a file, since a second *process* is refused by DuckDB's file lock) and as CLI
processes on PostgreSQL, where two schedulers really do run at once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sqltraits_kit.publishing.standin import Delay, FakeSegmentServer
from sqltraits_kit.publishing.sync import history, sync
from sqltraits_kit.publishing.sync import lease as lz
from sqltraits_kit.warehouse import connect
from tests.support.sync import WRITE_KEY, assert_server_holds, make_client, make_table

ROOT = Path(__file__).resolve().parents[2]
N = 2_000
BATCH = 100

#: A heartbeat thread that dies (it did on a locked DuckDB instance: the lease then lapsed
#: mid-run) must fail the test that saw it.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


def _table(n: int = N, bump: float = 0.0) -> dict:
    return {"user_id": [f"u{i:05d}" for i in range(n)], "score": [i / n + bump for i in range(n)]}


def _key(name: str) -> str:
    return f"table:{name}:identify"


def _run_in_thread(url, name, server, outcomes, barrier=None, **options):
    """A run with its own connection and client, as a second scheduler would have."""

    def body():
        wh = connect(url)
        client = make_client(server, [], concurrency=2)
        try:
            if barrier is not None:
                barrier.wait()
            outcomes.append(sync(wh, name, client=client, batch_size=BATCH, **options))
        except Exception as exc:  # the test asserts on it
            outcomes.append(exc)
        finally:
            client.close()
            wh.close()

    thread = threading.Thread(target=body)
    thread.start()
    return thread


def _wait_for_holder(wh, name, server, *, timeout=60.0) -> dict:
    dest = lz.client_destination(make_client(server, []))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = lz.current_holder(wh, _key(name), dest)
        if row is not None and row["live"] and row["run_id"]:
            return row
        time.sleep(0.02)
    raise AssertionError("no run took the lease")


@pytest.mark.parametrize("attempt", range(3))
def test_racing_acquisitions_have_exactly_one_winner(wh, unique_name, attempt):
    contenders = 6
    barrier = threading.Barrier(contenders)
    outcomes: list = []

    def take():
        own = connect(wh.url)
        try:
            barrier.wait()
            outcomes.append(lz.acquire(own, sync_key=unique_name, destination="d", ttl=30))
        except lz.LeaseHeld as exc:
            outcomes.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=take) for _ in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    won = [o for o in outcomes if isinstance(o, lz.Lease)]
    held = [o for o in outcomes if isinstance(o, lz.LeaseHeld)]
    assert len(won) == 1 and len(held) == contenders - 1, outcomes
    assert all(h.holder["holder"] == won[0].holder for h in held)


def test_two_runs_at_once_one_sends_the_other_names_the_holder(wh, unique_name):
    make_table(wh, unique_name, _table())
    with FakeSegmentServer(write_keys=(WRITE_KEY,)) as server:
        server.fail_every(1, Delay(0.1))  # the run that wins is still sending when the other asks
        outcomes: list = []
        barrier = threading.Barrier(2)
        threads = [_run_in_thread(wh.url, unique_name, server, outcomes, barrier) for _ in "ab"]
        for t in threads:
            t.join(timeout=120)
        results = [o for o in outcomes if not isinstance(o, Exception)]
        refused = [o for o in outcomes if isinstance(o, Exception)]
        assert len(results) == 1 and len(refused) == 1, outcomes
        error = refused[0]
        assert isinstance(error, lz.LeaseHeld)
        assert f"host {socket.gethostname()} (pid {os.getpid()})" in str(error)
        assert " since 20" in str(error) and "--wait" in str(error)
        assert results[0].sent == N and results[0].status == "succeeded"
        stats = server.snapshot()
        # the refused run sent nothing: every message arrived exactly once
        assert (stats["messages_received"], stats["duplicates"]) == (N, 0)
        assert_server_holds(server, wh, unique_name)
    runs = history(wh, sync_key=_key(unique_name))
    assert len(runs) == 1  # the refused run left no trace: it neither started nor resumed


def test_a_waiting_run_starts_after_the_holder_finishes(wh, unique_name):
    make_table(wh, unique_name, _table())
    with FakeSegmentServer(write_keys=(WRITE_KEY,)) as server:
        server.fail_every(1, Delay(0.05))
        outcomes: list = []
        first = _run_in_thread(wh.url, unique_name, server, outcomes)
        holder = _wait_for_holder(wh, unique_name, server)
        second = _run_in_thread(wh.url, unique_name, server, outcomes, wait=True)
        first.join(timeout=120)
        second.join(timeout=120)
        assert not any(isinstance(o, Exception) for o in outcomes), outcomes
        a, b = outcomes
        assert a.run_id == holder["run_id"] and a.sent == N
        # the waiting run found everything delivered: a new run (not a resumption), nothing sent
        assert b.run_id != a.run_id and not b.resumed
        assert (b.unchanged, b.sent) == (N, 0)
        assert server.snapshot()["messages_received"] == N
    runs = history(wh, sync_key=_key(unique_name)).set_index("run_id")
    assert runs.loc[b.run_id, "started_at"] >= runs.loc[a.run_id, "finished_at"]


def test_a_lease_whose_holder_stopped_heartbeating_is_taken_over(wh, unique_name):
    make_table(wh, unique_name, _table(300))
    with FakeSegmentServer(write_keys=(WRITE_KEY,)) as server:
        client = make_client(server, [])
        dest = lz.client_destination(client)
        # A run on another host that died: its last heartbeat said "mine for 1.5 s".
        lz.ensure_lease_table(wh)
        ghost = lz.Lease(wh, _key(unique_name), dest, ttl=1.5, host="elsewhere", pid=4242)
        ghost.run_id = "ghost-run"
        assert ghost.heartbeat()
        with pytest.raises(lz.LeaseHeld, match=r"run ghost-run on host elsewhere \(pid 4242\)"):
            sync(wh, unique_name, client=client, batch_size=BATCH)
        time.sleep(1.6)  # the lease's own expiry, judged in the warehouse's clock
        result = sync(wh, unique_name, client=client, batch_size=BATCH)
        assert result.sent == 300
        # the ghost's next heartbeat finds the lease taken: it would stop
        assert not ghost.heartbeat()
        assert "taken over" in ghost.lost
        with pytest.raises(lz.RunStopped, match="taken over"):
            ghost.check()
        client.close()


def test_a_run_that_loses_its_lease_stops_between_batches(wh, unique_name):
    make_table(wh, unique_name, _table())
    with FakeSegmentServer(write_keys=(WRITE_KEY,)) as server:
        # slow enough (about 3 s for the run) that the takeover below lands mid-run on a
        # loaded machine too
        server.fail_every(1, Delay(0.3))
        outcomes: list = []
        run = _run_in_thread(wh.url, unique_name, server, outcomes, lease_ttl=0.6)
        holder = _wait_for_holder(wh, unique_name, server)
        # Another run takes the lease as if this one's heartbeat had lapsed: it appends the
        # next epoch (retrying if the heartbeat thread got there first).
        thief = lz.Lease(wh, holder["sync_key"], holder["destination"], ttl=60, host="thief")
        thief.epoch = int(holder["epoch"])
        while True:
            try:
                if thief.heartbeat():
                    break
            except Exception:
                pass
            thief.lost = None
            thief.epoch = int(
                lz.current_holder(wh, holder["sync_key"], holder["destination"])["epoch"]
            )
        run.join(timeout=120)
        (result,) = outcomes
        assert not isinstance(result, Exception), result
        assert not result.ok and result.unsent > 0 and "taken over" in result.error
        assert result.sent < N


def test_max_duration_stops_between_batches_and_the_next_run_sends_the_rest(wh, unique_name):
    make_table(wh, unique_name, _table())
    with FakeSegmentServer(write_keys=(WRITE_KEY,)) as server:
        server.fail_every(1, Delay(0.1))
        client = make_client(server, [], concurrency=1)
        stopped = sync(wh, unique_name, client=client, batch_size=BATCH, max_duration=0.5)
        assert stopped.status == "partial" and not stopped.ok
        assert stopped.unsent > 0 and stopped.sent + stopped.unsent == N
        assert "time limit" in stopped.error and "--max-duration 0.5" in stopped.error
        runs = history(wh, sync_key=_key(unique_name))
        assert runs["status"].iloc[0] == "partial" and "time limit" in runs["error"].iloc[0]
        server.clear_faults()
        rest = sync(wh, unique_name, client=client, batch_size=BATCH)
        assert rest.sent == stopped.unsent and rest.ok
        assert_server_holds(server, wh, unique_name)
        client.close()


# -- the CLI ---------------------------------------------------------------------------------


def _cli(db: str, table: str, server: FakeSegmentServer, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "sqltraits_kit", "sync", "--db", db, "--table", table]
    args += ["--endpoint", server.url, "--max-requests-per-second", "0"]
    args += ["--max-events-per-second", "0", "--batch-size", str(BATCH), *extra]
    env = {**os.environ, "SEGMENT_WRITE_KEY": WRITE_KEY, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_accepted(
    server: FakeSegmentServer, proc: subprocess.Popen, n: int, *, count: str = "messages_accepted"
) -> None:
    """Until the server's ``count`` reaches ``n`` (the process must still be running)."""
    deadline = time.monotonic() + 120
    while server.snapshot()[count] < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.postgres
def test_cli_second_scheduler_exits_2_and_a_waiting_one_runs_after(postgres_url, unique_name):
    wh = connect(postgres_url)
    make_table(wh, unique_name, _table())
    with FakeSegmentServer(write_keys=(WRITE_KEY,)) as server:
        # every request of the first run is held until the second has been refused, however
        # long the second takes to start on a busy machine
        release = threading.Event()
        server.fail_every(1, Delay(120.0, until=release))
        first = _cli(postgres_url, unique_name, server, "--json")
        _wait_accepted(server, first, 1, count="requests")
        second = _cli(postgres_url, unique_name, server)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 2, (out, err)
        assert first.poll() is None  # refused while the first was still running
        assert f"(pid {first.pid})" in err and "is being published to" in err
        assert WRITE_KEY not in err
        waiting = _cli(postgres_url, unique_name, server, "--wait", "--json")
        release.set()
        out1, err1 = first.communicate(timeout=120)
        out3, err3 = waiting.communicate(timeout=120)
        assert first.returncode == 0 and waiting.returncode == 0, (err1, err3)
        a, c = json.loads(out1), json.loads(out3)
        assert a["sent"] == N and (c["sent"], c["unchanged"]) == (0, N)
        assert server.snapshot()["messages_received"] == N
    wh.close()


@pytest.mark.parametrize(
    "backend", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_cli_kill_9_then_rerun_takes_the_dead_runs_lease_and_resumes(
    backend, tmp_path, request, unique_name
):
    db = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    if backend == "postgres":
        db = request.getfixturevalue("postgres_url")
    wh = connect(db, create=True)
    make_table(wh, unique_name, _table())
    wh.close()
    with FakeSegmentServer(write_keys=(WRITE_KEY,)) as server:
        server.fail_every(1, Delay(0.05))
        proc = _cli(db, unique_name, server, "--commit-interval", "0")
        _wait_accepted(server, proc, 500)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        server.clear_faults()
        rerun = _cli(db, unique_name, server, "--json", "--commit-interval", "0")
        out, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err  # not refused: the holder's process is gone
        result = json.loads(out)
        assert result["attempt"] == 2 and result["status"] == "succeeded"
        wh = connect(db, read_only=True)
        try:
            assert_server_holds(server, wh, unique_name)
        finally:
            wh.close()


def test_cli_max_duration_prints_the_stop_and_exits_1(tmp_path):
    db = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    wh = connect(db, create=True)
    make_table(wh, "scores", _table())
    wh.close()
    with FakeSegmentServer(write_keys=(WRITE_KEY,)) as server:
        server.fail_every(1, Delay(0.2))
        proc = _cli(db, "scores", server, "--max-duration", "1")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, (out, err)
        assert "stopped at the run's time limit (--max-duration 1 s" in out
        assert "run " in out and " partial" in out
