from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from sqltraits_kit.cli import main
from sqltraits_kit.warehouse import connect
from tests.support.traits import CHURN, churn_traits_table


@pytest.fixture
def db(tmp_path) -> str:
    """A DuckDB file with a good output table and one with a duplicate identifier."""
    url = f"duckdb:///{tmp_path / 'traits.duckdb'}"
    wh = connect(url, create=True)
    wh.con.create_table("churn_traits", obj=churn_traits_table(300))
    bad = churn_traits_table(10).to_pydict()
    bad["user_id"][3] = bad["user_id"][7] = "u-dup"
    wh.con.create_table("bad_traits", obj=pa.table(bad))
    wh.close()
    return url


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["validate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_good_table_exits_0(db, capsys):
    code, out, _ = _run(capsys, "--db", db, "--table", "churn_traits")
    assert code == 0
    assert "validating table churn_traits" in out and "OK: 19/19 rules passed" in out


def test_an_error_level_failure_exits_1_and_names_the_rows(db, capsys):
    code, out, _ = _run(capsys, "--db", db, "--table", "bad_traits")
    assert code == 1
    assert "ERROR   identifier_unique" in out and "'u-dup' ×2" in out
    assert out.strip().splitlines()[-1].startswith("FAILED")


def test_json_output(db, capsys):
    code, out, _ = _run(capsys, "--db", db, "--table", "bad_traits", "--json")
    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False and data["source"] == "table bad_traits"
    rule = next(r for r in data["rules"] if r["name"] == "identifier_unique")
    assert rule["sample"] == [{"user_id": "u-dup", "rows": 2}]
    assert data["warehouse"] == db and data["rows"] == 10


def test_trait_set_validates_the_resolved_table(db, capsys):
    code, out, _ = _run(capsys, "--db", db, "--trait-set", str(CHURN), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["columns"] == [
        "user_id",
        "churn_probability",
        "p_alive",
        "churn_risk_tier",
        "high_churn_risk",
    ]


def test_queries(db, capsys):
    query = "SELECT user_id, churn_probability_90d AS email FROM churn_traits"
    code, out, _ = _run(capsys, "--db", db, "--query", query)
    assert code == 1 and "identity_trait_names" in out
    code, out, _ = _run(capsys, "--db", db, "--query", query, "--allow-reserved", "email")
    assert code == 0
    code, _, err = _run(capsys, "--db", db, "--query", "DELETE FROM churn_traits")
    assert code == 2 and "must be a SELECT" in err


def test_accounts_and_id_column_options(db, capsys):
    code, out, _ = _run(
        capsys, "--db", db, "--table", "churn_traits", "--kind", "account", "--id-column", "user_id"
    )
    assert code == 0 and "WARNING identifier_name" in out  # group_id is Segment's name


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--table", "nope"], "table 'nope' not found"),
        (["--trait-set", "missing.toml"], "trait-set file not found"),
        (["--trait-set", str(CHURN), "--id-column", "x"], "come from the trait set"),
        (["--query", "SELECT * FROM nope"], "the query failed"),
    ],
)
def test_usage_errors_exit_2(db, capsys, args, words):
    code, _, err = _run(capsys, "--db", db, *args)
    assert code == 2
    assert err.startswith("sqltraits validate: error: ") and words in err


def test_a_bad_trait_set_file_exits_2(db, capsys, tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('name = "x"\ntable = "churn_traits"\non_remove = "drop"\n')
    code, _, err = _run(capsys, "--db", db, "--trait-set", str(path))
    assert code == 2 and "on_remove" in err and "broken.toml" in err


def test_argparse_requires_a_source(db):
    with pytest.raises(SystemExit) as info:
        main(["validate", "--db", db])
    assert info.value.code == 2


@pytest.mark.postgres
def test_validate_on_postgres(postgres_wh, unique_name, capsys):
    postgres_wh.con.create_table(unique_name, obj=churn_traits_table(50, bad_rows=True))
    code, out, _ = _run(capsys, "--db", postgres_wh.url, "--table", unique_name, "--json")
    data = json.loads(out)
    assert code == 1
    rule = next(r for r in data["rules"] if r["name"] == "finite_numbers")
    assert rule["columns"] == {"churn_probability_90d": 1, "predicted_ltv_90d": 1}


def _console_script() -> list[str]:
    beside = Path(sys.executable).with_name("sqltraits")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("sqltraits")
    if found is None:
        pytest.fail("the sqltraits console script is not installed (pip install -e .)")
    return [found]


def test_the_console_script(db):
    proc = subprocess.run(
        [*_console_script(), "validate", "--db", db, "--table", "bad_traits", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["errors"] == 1
    missing = subprocess.run(
        [*_console_script(), "validate", "--db", db, "--table", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and "not found" in missing.stderr
