"""`sqltraits sample --db` takes a warehouse URL like every other command (issue 17, item 13)."""

from __future__ import annotations

from sqltraits_kit.cli import main


def test_sample_takes_a_duckdb_url_and_tables_reads_it(tmp_path, capsys):
    file = tmp_path / "demo.duckdb"
    url = f"duckdb://{file}"  # duckdb:///tmp/... : the URL every other command takes
    assert main(["sample", "--db", url, "--customers", "200", "--quiet"]) == 0
    assert file.is_file()
    assert main(["tables", "--db", url]) == 0
    assert "users" in capsys.readouterr().out


def test_sample_refuses_another_engine_with_the_load_command_to_use(tmp_path, capsys):
    code = main(["sample", "--db", "postgres://postgres@127.0.0.1:5432/test", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "sqltraits sample: error: sample builds a DuckDB file, not a postgres warehouse" in err
    assert "sqltraits load --from duckdb:///sample.duckdb --to <URL>" in err


def test_sample_refuses_a_duckdb_url_that_names_no_file(capsys):
    assert main(["sample", "--db", "duckdb://:memory:", "--quiet"]) == 2
    assert "--db must name a DuckDB file" in capsys.readouterr().err
