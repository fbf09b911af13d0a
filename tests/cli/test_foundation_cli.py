from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from sqltraits_kit.cli import main


def _sqltraits() -> list[str]:
    exe = shutil.which("sqltraits")
    return [exe] if exe else [sys.executable, "-m", "sqltraits_kit"]


def test_sample_command_twice_gives_identical_content(tmp_path):
    for name in ("a.duckdb", "b.duckdb"):
        proc = subprocess.run(
            [
                *_sqltraits(),
                "sample",
                "--db",
                str(tmp_path / name),
                "--customers",
                "800",
                "--seed",
                "3",
                "--quiet",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ},
        )
        assert proc.returncode == 0, proc.stderr
        assert "users 800" in proc.stdout
    import duckdb

    def digest(p):
        con = duckdb.connect(str(p), read_only=True)
        return [
            con.sql(f"SELECT bit_xor(hash(COLUMNS(*))) FROM {t}").fetchone()
            for t in ("users", "accounts", "tracks", "pages", "order_completed")
        ]

    assert digest(tmp_path / "a.duckdb") == digest(tmp_path / "b.duckdb")


def test_tables_json(sample_file, capsys):
    assert main(["tables", "--db", f"duckdb://{sample_file}", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tables"]["users"]["rows"] == 2_000
    assert "revenue" in out["tables"]["order_completed"]["columns"]


def test_usage_errors_exit_2_with_a_message(capsys, tmp_path):
    assert main(["tables", "--db", f"duckdb://{tmp_path}/missing.duckdb"]) == 2
    assert "no such warehouse file" in capsys.readouterr().err
    assert main(["sample", "--db", str(tmp_path / "x.duckdb"), "--customers", "0"]) == 2
    with pytest.raises(SystemExit) as info:
        main(["sample"])  # --db is required
    assert info.value.code == 2


@pytest.mark.postgres
def test_load_copies_the_sample_into_postgres(sample_file, postgres_url, capsys):
    assert (
        main(
            [
                "load",
                "--from",
                f"duckdb://{sample_file}",
                "--to",
                postgres_url,
                "--table",
                "accounts",
            ]
        )
        == 0
    )
    assert "accounts: 200 rows" in capsys.readouterr().out
