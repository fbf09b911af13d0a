"""``kill -9`` mid-run, twice, then a rerun: the server holds exactly the table's values.

The CLI runs in a subprocess against the fake server (in this process, answering slowly so the
run can be killed part-way); SIGKILL gives it no chance to record anything.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from sqltraits_kit.publishing.standin import Delay, FakeSegmentServer
from sqltraits_kit.publishing.sync import history
from sqltraits_kit.warehouse import connect
from tests.support.sync import WRITE_KEY, assert_server_holds

ROOT = Path(__file__).resolve().parents[2]
N = 20_000
BATCH = 100
CONCURRENCY = 4  # the SegmentClient default the CLI uses
# In flight when killed: up to 2 x concurrency batches sent but not settled, plus the batch
# acknowledged but not yet committed (the CLI commits after every batch here).
IN_FLIGHT_BOUND = (2 * CONCURRENCY + 1) * BATCH


def _cli(db: str, server: FakeSegmentServer) -> subprocess.Popen:
    args = [
        sys.executable,
        "-m",
        "sqltraits_kit",
        "sync",
        "--db",
        db,
        "--table",
        "scores",
        "--endpoint",
        server.url,
        "--max-requests-per-second",
        "0",
        "--max-events-per-second",
        "0",
        "--batch-size",
        str(BATCH),
        "--commit-interval",
        "0",
        "--json",
    ]
    env = {**os.environ, "SEGMENT_WRITE_KEY": WRITE_KEY, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _kill_when(proc: subprocess.Popen, server: FakeSegmentServer, accepted: int) -> None:
    deadline = time.monotonic() + 120
    while server.snapshot()["messages_accepted"] < accepted:
        assert proc.poll() is None, f"finished before the kill: {proc.communicate()}"
        assert time.monotonic() < deadline, "the run did not progress"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_kill_9_twice_then_rerun_ends_with_exactly_the_tables_values(tmp_path, capsys):
    path = tmp_path / "wh.duckdb"
    db = f"duckdb:///{path}"
    wh = connect(db, create=True)
    scores = pa.table(
        {
            "user_id": [f"u{i:06d}" for i in range(N)],
            "score": [(i * 7919 % N) / N for i in range(N)],
            "plan": ["gold" if i % 3 else "free" for i in range(N)],
        }
    )
    wh.con.create_table("scores", scores)
    wh.close()

    with FakeSegmentServer(write_keys=(WRITE_KEY,)) as server:
        server.fail_every(1, Delay(0.05))  # every request answers slowly
        _kill_when(_cli(db, server), server, accepted=3_000)
        first_kill = server.snapshot()["messages_accepted"]
        _kill_when(_cli(db, server), server, accepted=first_kill + 6_000)
        killed = server.snapshot()
        assert killed["messages_accepted"] < N  # really stopped part-way

        server.clear_faults()
        proc = _cli(db, server)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        result = json.loads(out)
        assert result["status"] == "succeeded" and result["failed"] == 0
        assert result["attempt"] == 3  # the same run, resumed twice
        assert result["new"] == N and result["sent"] == N

        stats = server.snapshot()
        assert stats["messages_accepted"] == N  # nothing lost, nothing applied twice
        # re-sent only what was in flight at each kill, under the same message ids
        assert stats["duplicates"] <= 2 * IN_FLIGHT_BOUND
        with capsys.disabled():
            print(
                f"\n[kill -9] killed at {first_kill:,} and {killed['messages_accepted']:,} of "
                f"{N:,} accepted; after the rerun: {stats['messages_accepted']:,} accepted, "
                f"{stats['duplicates']:,} duplicates dropped (bound {2 * IN_FLIGHT_BOUND:,})"
            )
        wh = connect(db, read_only=True)
        try:
            assert_server_holds(server, wh, "scores")
            runs = history(wh)
            assert len(runs) == 1 and runs["run_id"].iloc[0] == result["run_id"]
        finally:
            wh.close()

        # and a second run finds nothing to send
        proc = _cli(db, server)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        again = json.loads(out)
        assert (again["unchanged"], again["sent"], again["requests"]) == (N, 0, 0)
