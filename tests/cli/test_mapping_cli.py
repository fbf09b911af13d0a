from __future__ import annotations

import json

from sqltraits_kit.cli import main
from sqltraits_kit.modelling.features import TableMapping


def test_mapping_guess_is_saved_for_train(sample_file, tmp_path, capsys):
    out_file = tmp_path / "mapping.json"
    assert main(["mapping", "--db", f"duckdb://{sample_file}", "--save", str(out_file)]) == 0
    text = capsys.readouterr().out
    assert "orders_table         order_completed: " in text
    assert f"sqltraits train --mapping {out_file}" in text
    assert TableMapping.from_dict(json.loads(out_file.read_text())) == TableMapping()


def test_mapping_json_and_exit_1_when_nothing_fits(tmp_path, capsys):
    import duckdb

    path = tmp_path / "people.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE people AS SELECT 'u' || range AS user_id FROM range(5)")
    con.close()
    assert main(["mapping", "--db", f"duckdb://{path}", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["mapping"] is None
    assert "no orders table found" in out["problems"][0]
