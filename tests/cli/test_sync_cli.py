"""The `sqltraits sync` / `sqltraits history` contract that scripts and schedulers rely on."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from sqltraits_kit.cli import main
from sqltraits_kit.publishing.standin import Respond
from sqltraits_kit.warehouse import connect
from tests.support.segment import WRITE_KEY

CONTRACT = ["run_id", "status", "rows", "new", "changed", "removed", "unchanged", "sent"]
CONTRACT += ["failed", "requests", "duration_s"]
N = 1_200


@pytest.fixture
def db(tmp_path) -> str:
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    wh = connect(url, create=True)
    wh.con.create_table(
        "scores",
        pa.table({"user_id": [f"u{i}" for i in range(N)], "score": [i / N for i in range(N)]}),
    )
    wh.close()
    return url


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("SEGMENT_WRITE_KEY", WRITE_KEY)
    for name in ("SQLTRAITS_DB_URL", "SEGMENT_REGION", "SEGMENT_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


def _sync(db: str, server, *extra: str) -> list[str]:
    return [
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
        *extra,
    ]


def test_json_contract_and_exit_0_when_every_row_was_delivered(
    db,
    env,
    segment_server,
    capsys,
):
    assert main(_sync(db, segment_server, "--json")) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out)[: len(CONTRACT)] == CONTRACT
    assert (out["status"], out["rows"], out["new"], out["sent"], out["failed"]) == (
        "succeeded",
        N,
        N,
        N,
        0,
    )
    assert out["requests"] == 3 and out["duration_s"] > 0
    assert segment_server.snapshot()["messages_accepted"] == N

    assert main(_sync(db, segment_server, "--json")) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["unchanged"], again["sent"], again["requests"]) == (N, 0, 0)

    assert main(["history", "--db", db, "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [r["run_id"] for r in runs] == [again["run_id"], out["run_id"]]
    assert runs[1]["sent"] == N and runs[1]["status"] == "succeeded"


def test_exit_1_when_rows_failed_and_they_are_listed(
    db,
    env,
    segment_server,
    capsys,
):
    segment_server.inject(Respond(400))
    assert main(_sync(db, segment_server, "--json", "--batch-size", "200")) == 1
    out = json.loads(capsys.readouterr().out)
    assert (out["status"], out["sent"], out["failed"]) == ("partial", N - 200, 200)
    assert main(["history", "--db", db, "--failed", "--json", "--limit", "500"]) == 0
    failed = json.loads(capsys.readouterr().out)["failed"]
    assert len(failed) == 200 and failed[0]["attempts"] == 1 and "HTTP 400" in failed[0]["reason"]
    # the next run sends them again and exits 0
    assert main(_sync(db, segment_server)) == 0
    text = capsys.readouterr().out
    assert "sent 200, failed 0" in text and WRITE_KEY not in text
    assert main(["history", "--db", db, "--failed"]) == 0
    assert "no failed rows" in capsys.readouterr().out


def test_dry_run_sends_nothing_and_reports_requests_and_duration(
    db,
    env,
    segment_server,
    capsys,
):
    args = ["sync", "--db", db, "--table", "scores", "--dry-run", "--json"]
    assert main([*args, "--max-requests-per-second", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["status"], out["to_send"], out["requests"], out["sent"]) == ("dry_run", N, 3, 0)
    assert out["expected_duration_s"] == pytest.approx(1.5)
    assert len(out["sample"]) == 5 and json.loads(out["sample"][0])["type"] == "identify"
    assert segment_server.snapshot()["requests"] == 0
    # no write key needed for a dry run
    assert main([*args[:-1]]) == 0
    assert "nothing sent" in capsys.readouterr().out


def test_usage_and_configuration_errors_exit_2(
    db,
    env,
    segment_server,
    monkeypatch,
    tmp_path,
    capsys,
):
    monkeypatch.delenv("SEGMENT_WRITE_KEY")
    assert main(_sync(db, segment_server)) == 2
    assert "SEGMENT_WRITE_KEY" in capsys.readouterr().err
    monkeypatch.setenv("SEGMENT_WRITE_KEY", WRITE_KEY)
    assert main(["sync", "--table", "scores"]) == 2
    assert "--db" in capsys.readouterr().err
    assert main(["sync", "--db", db, "--trait-set", str(tmp_path / "missing.toml")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(_sync(db, segment_server, "--id-column", "nope")) == 2
    assert main(["sync", "--db", db, "--table", "scores", "--endpoint", "ftp://x"]) == 2
    assert "http" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["sync", "--db", db, "--table", "scores", "--region", "eu", "--endpoint", "http://x"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["sync", "--db", db, "--table", "scores", "--kind", "track"])
    assert info.value.code == 2 and "--kind" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(_sync(db, segment_server, "--max-requests-per-second", "-1"))
    assert info.value.code == 2
    # a wrong write key is a configuration error, and the key is not shown
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "wk_not_the_right_one_123")
    assert main(_sync(db, segment_server)) == 2
    err = capsys.readouterr().err
    assert "refused the write key" in err and "wk_not_the_right_one_123" not in err


def test_a_drift_refusal_is_exit_2_and_allow_drift_overrides_it(
    db,
    env,
    segment_server,
    capsys,
):
    assert main(_sync(db, segment_server)) == 0
    wh = connect(db)
    wh.con.create_table(
        "scores",
        pa.table({"user_id": [f"u{i}" for i in range(N)], "score": [i / N + 3 for i in range(N)]}),
        overwrite=True,
    )
    wh.close()
    capsys.readouterr()
    assert main(_sync(db, segment_server)) == 2
    assert "--allow-drift" in capsys.readouterr().err
    assert main(_sync(db, segment_server, "--dry-run")) == 2
    assert "REFUSED" in capsys.readouterr().out
    assert main(_sync(db, segment_server, "--allow-drift", "--json")) == 0
    assert json.loads(capsys.readouterr().out)["changed"] == N


def test_trait_set_file_and_group_kind(
    db,
    env,
    segment_server,
    tmp_path,
    capsys,
):
    wh = connect(db)
    wh.con.create_table("accounts_scores", pa.table({"group_id": ["a1", "a2"], "seats": [3, 9]}))
    wh.close()
    toml = tmp_path / "seats.toml"
    toml.write_text(
        'name = "seats"\nkind = "account"\ntable = "accounts_scores"\n'
        '[traits]\nseats = "seat_count"\n'
    )
    args = ["sync", "--db", db, "--trait-set", str(toml), "--endpoint", segment_server.url]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sync_key"] == "seats" and out["kind"] == "group" and out["sent"] == 2
    assert segment_server.group_traits("a2") == {"seat_count": 9}
    assert main([*args, "--kind", "identify"]) == 2
    assert "contradicts" in capsys.readouterr().err
