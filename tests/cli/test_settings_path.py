"""Every command reads its settings one way: a malformed variable is a usage error (exit 2)
with one line naming it, never a traceback (issue 10: some commands called Settings.from_env()
unguarded)."""

from __future__ import annotations

import pytest

from sqltraits_kit.cli import main

# Commands that read settings before doing anything else, with arguments that would otherwise
# get them past argparse.
COMMANDS = [
    ["models"],
    ["history", "--db", "duckdb:///nowhere.duckdb"],
    ["score", "--db", "duckdb:///nowhere.duckdb", "--model", "churn"],
    ["train", "--db", "duckdb:///nowhere.duckdb", "--model", "churn"],
    ["validate", "--table", "churn_traits"],
    ["sync", "--table", "churn_traits", "--db", "duckdb:///nowhere.duckdb", "--dry-run"],
    ["run", "traitsets/churn.toml", "--db", "duckdb:///nowhere.duckdb", "--dry-run"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: a[0])
def test_a_malformed_setting_is_exit_2_naming_it(argv, monkeypatch, capsys):
    monkeypatch.setenv("SEGMENT_REGION", "mars")
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"sqltraits {argv[0]}: error:" in err
    assert "segment_region must be 'us' or 'eu', got 'mars'" in err
    assert "Traceback" not in err
