"""`sqltraits run TRAIT_SET_FILE`: the cron-ready job, as a subprocess with its real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support import ROOT
from tests.support.models import train_demo_models
from tests.support.segment import WRITE_KEY

SYNC_KEYS = ["run_id", "status", "rows", "new", "changed", "removed", "unchanged", "sent",
             "failed", "requests", "duration_s"]  # fmt: skip


def _run(args, env):
    return subprocess.run(
        [sys.executable, "-m", "sqltraits_kit", "run", *args],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
    )  # fmt: skip


def test_run_scores_and_publishes_with_sync_json_and_exit_codes(
    duckdb_wh,
    tmp_path,
    segment_server,
):
    train_demo_models(duckdb_wh, tmp_path / "models")
    url = duckdb_wh.url
    duckdb_wh.close()  # the job opens the file itself, as cron would
    env = {
        **os.environ,
        "SEGMENT_WRITE_KEY": WRITE_KEY,
        "SEGMENT_ENDPOINT": segment_server.url,
        "SQLTRAITS_MODELS_DIR": str(tmp_path / "models"),
        "SQLTRAITS_MAX_REQUESTS_PER_SECOND": "0",
        "SQLTRAITS_MAX_EVENTS_PER_SECOND": "0",
    }
    trait_set = str(ROOT / "traitsets" / "churn.toml")
    proc = _run([trait_set, "--db", url, "--json", "--quiet"], env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert list(out)[: len(SYNC_KEYS)] == SYNC_KEYS
    assert out["status"] == "succeeded" and out["sent"] == out["rows"] > 0
    assert segment_server.snapshot()["messages_accepted"] == out["sent"]
    assert WRITE_KEY not in proc.stdout + proc.stderr

    # a broken trait set file, a missing warehouse URL: usage errors, exit 2, one line each
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\ntable = "churn_traits"\non_remove = "sometimes"\n')
    proc = _run([str(bad), "--db", url], env)
    assert proc.returncode == 2 and "on_remove" in proc.stderr
    env.pop("SQLTRAITS_DB_URL", None)
    proc = _run([trait_set], env)
    assert proc.returncode == 2 and "--db" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_without_a_write_key_is_a_usage_error(duckdb_wh, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SEGMENT_WRITE_KEY"}
    proc = _run([str(ROOT / "traitsets" / "churn.toml"), "--db", duckdb_wh.url], env)
    assert proc.returncode == 2 and "SEGMENT_WRITE_KEY" in proc.stderr
    # _run uses `python -m sqltraits_kit`, so this holds whether or not the console script is
    # on PATH (it used to be skipped when it was not).
    assert "Traceback" not in proc.stderr
