"""`sqltraits rollback`: JSON, exit codes, and the history line it leaves."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from sqltraits_kit.cli import main
from sqltraits_kit.warehouse import connect
from tests.support.segment import WRITE_KEY
from tests.support.sync import server_profiles

N = 200


def _write(url: str, shift: float) -> None:
    wh = connect(url, create=True)
    scores = [i / N + (shift if i % 5 == 0 else 0.0) for i in range(N)]
    wh.con.create_table(
        "scores",
        pa.table({"user_id": [f"u{i}" for i in range(N)], "score": scores}),
        overwrite=True,
    )
    wh.close()


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("SEGMENT_WRITE_KEY", WRITE_KEY)
    for name in ("SQLTRAITS_DB_URL", "SEGMENT_REGION", "SEGMENT_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


def test_rollback_cli_dry_run_then_rollback(tmp_path, env, segment_server, capsys):
    db = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    where = ["--db", db, "--endpoint", segment_server.url]
    sync = ["sync", *where, "--table", "scores", "--json", "--allow-drift"]
    _write(db, 0.0)
    assert main(sync) == 0
    first = json.loads(capsys.readouterr().out)["run_id"]
    held = server_profiles(segment_server)
    _write(db, 0.5)
    assert main(sync) == 0
    capsys.readouterr()
    back = ["rollback", *where, "--sync-key", "table:scores:identify", "--run-id", first]

    assert main([*back, "--dry-run", "--json"]) == 2  # the drift gate judges a rollback too
    assert json.loads(capsys.readouterr().out)["verdicts"]["drift_over"] == ["score"]
    assert main([*back, "--dry-run", "--json", "--allow-drift"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["status"], report["changed"], report["sent"]) == ("dry_run", N // 5, 0)

    assert main([*back, "--json", "--allow-drift"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["status"], out["sent"]) == ("succeeded", N // 5)
    assert server_profiles(segment_server) == held

    assert main(["history", "--db", db, "--json"]) == 0
    latest = json.loads(capsys.readouterr().out)["runs"][0]
    assert latest["source"] == f"rollback of run {first}"

    assert main([*back[:-1], "no-such-run"]) == 2
    assert "no publish run 'no-such-run'" in capsys.readouterr().err
