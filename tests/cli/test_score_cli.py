"""sqltraits score: in-process for the paths and errors, once as a real process end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from sqltraits_kit.cli import main
from sqltraits_kit.warehouse import connect


@pytest.fixture
def db(sample_file, tmp_path) -> str:
    path = tmp_path / "wh.duckdb"
    shutil.copyfile(sample_file, path)
    return f"duckdb:///{path}"


def _table(url: str, name: str):
    wh = connect(url, read_only=True)
    try:
        return wh.table(name).to_pandas()
    finally:
        wh.close()


def test_score_json_reports_rows_paths_and_run(db, trained, capsys):
    registry, refs = trained
    argv = ["score", "--db", db, "--models-dir", str(registry.root), "--json", "--quiet"]
    argv += ["--model", "churn", "--model", refs["btyd"], "--model", "ltv@1"]
    assert main([*argv, "--table", "churn_traits", "--as-of", "2026-06-01"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["table"] == "churn_traits" and out["as_of"] == "2026-06-01"
    assert [m["ref"] for m in out["models"]] == ["churn@1", "btyd@1", "ltv@1"]
    assert {m["path"] for m in out["models"]} == {"warehouse"}
    assert all(m["parity_max_diff"] <= 1e-9 for m in out["models"])
    frame = _table(db, "churn_traits")
    assert len(frame) == out["rows"] > 0
    assert set(frame["run_id"]) == {out["run_id"]}
    assert {"churn_probability_90d", "p_alive", "predicted_ltv_90d"} <= set(frame.columns)


def test_score_text_output_names_the_path_and_why(db, trained, capsys):
    registry, refs = trained
    argv = ["score", "--db", db, "--models-dir", str(registry.root), "--model", refs["gbm"]]
    assert main([*argv, "--table", "gbm_traits", "--batch-rows", "400"]) == 0
    captured = capsys.readouterr()
    assert "wrote 2,000 rows to gbm_traits" in captured.out
    assert "streamed: no SQL translation" in captured.out
    assert "streaming features through churn-gbm@1: 2,000/2,000 rows" in captured.err


@pytest.mark.parametrize(
    ("extra", "status", "message"),
    [
        (["--model", "churn", "--as-of", "tomorrow"], 2, "as_of must be an ISO date"),
        (["--model", "churn", "--table", "Bad-Name"], 2, "lower snake_case"),
        (["--model", "churn-gbm", "--method", "warehouse"], 2, "cannot be scored in the warehouse"),
        (["--model", "nope"], 1, "no model named 'nope'"),
        (["--model", "churn", "--batch-rows", "0"], 2, "batch_rows must be at least 1"),
    ],
)
def test_score_errors_exit_with_a_message(db, trained, capsys, extra, status, message):
    registry, _ = trained
    argv = ["score", "--db", db, "--models-dir", str(registry.root), "--quiet", *extra]
    assert main(argv) == status
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.startswith("sqltraits score: error: ")  # every failure says "error:"
    wh = connect(db, read_only=True)
    try:
        assert not [t for t in wh.tables() if t.endswith("_traits")]
    finally:
        wh.close()


def test_score_runs_as_a_command(db, trained, tmp_path):
    registry, _ = trained
    exe = shutil.which("sqltraits")
    cmd = [exe] if exe else [sys.executable, "-m", "sqltraits_kit"]
    env = {**os.environ, "SQLTRAITS_MODELS_DIR": str(registry.root), "SQLTRAITS_DB_URL": db}
    proc = subprocess.run(
        [*cmd, "score", "--model", "churn@1", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["rows"] == 2_000 and out["table"] == "churn_traits"
    assert "[100%] wrote 2,000 rows to churn_traits" in proc.stderr
    assert len(_table(db, "churn_traits_history")) == 2_000
