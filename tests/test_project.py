"""The project file keeps choices per warehouse, keeps comments, never stores a password."""

from __future__ import annotations

import json

import pytest

from sqltraits_kit.cli import main
from sqltraits_kit.errors import ConfigError
from sqltraits_kit.modelling.features import TableMapping
from sqltraits_kit.workflows.project import Project
from tests.support.crm import crm_mapping
from tests.support.models import cdnow_crm_tables

CRM = crm_mapping()


def test_choices_round_trip_per_warehouse_and_keep_comments(tmp_path):
    path = tmp_path / "sqltraits.toml"
    path.write_text(
        '# our team\'s choices\n[warehouses."duckdb://a.duckdb"]\n# keep 90\nhorizon_days = 90\n'
    )
    project = Project(path)
    project.save("duckdb://b.duckdb", mapping=CRM, output_table="crm_traits")
    project.save("duckdb://a.duckdb", trait_sets=["traitsets/churn.toml"])
    text = path.read_text()
    assert "# our team's choices" in text and "# keep 90" in text
    again = Project(path)
    assert again.choices("duckdb://b.duckdb").mapping == CRM
    assert again.choices("duckdb://b.duckdb").output_table == "crm_traits"
    a = again.choices("duckdb://a.duckdb")
    assert (a.horizon_days, a.trait_sets, a.mapping) == (90, ("traitsets/churn.toml",), None)
    assert again.choices("duckdb://other.duckdb").mapping is None
    assert sorted(again.warehouses()) == ["duckdb://a.duckdb", "duckdb://b.duckdb"]


def test_a_password_is_never_written(tmp_path):
    project = Project(tmp_path / "sqltraits.toml")
    project.save("postgres://traits:s3cret@db:5432/wh", horizon_days=180)
    assert "s3cret" not in (tmp_path / "sqltraits.toml").read_text()
    # the same warehouse, named with its password, finds its choices
    assert (
        Project(tmp_path / "sqltraits.toml")
        .choices("postgres://traits:s3cret@db:5432/wh")
        .horizon_days
        == 180
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[warehouses."x"]\nhorizon = 3\n', "unknown key"),
        ('[warehouses."x"]\nhorizon_days = 0\n', "horizon_days must be a whole number"),
        ('[warehouses."x"]\ntrait_sets = "a.toml"\n', "trait_sets must be a list"),
        ('[warehouses."x".mapping]\norders = "o"\n', r"mapping: table mapping: unknown key"),
        ("[warehouses\n", "not valid TOML"),
    ],
)
def test_bad_files_name_the_problem(tmp_path, body, message):
    path = tmp_path / "sqltraits.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message):
        Project(path).choices("x")


def test_mapping_file_beats_project_beats_default(tmp_path):
    project = Project(tmp_path / "sqltraits.toml")
    assert project.mapping_for("duckdb://x.duckdb") == TableMapping()
    project.save("duckdb://x.duckdb", mapping=CRM)
    assert project.mapping_for("duckdb://x.duckdb") == CRM
    file = tmp_path / "m.json"
    file.write_text(json.dumps(TableMapping(orders_table="o").to_dict()))
    assert project.mapping_for("duckdb://x.duckdb", mapping_file=str(file)).orders_table == "o"


def test_saved_guess_is_what_train_uses_without_mapping(tmp_path, monkeypatch, capsys):
    """A CRM-shaped warehouse: `mapping --save-project`, then `train` with no --mapping."""
    import duckdb

    crm = cdnow_crm_tables()
    orders, customers = crm["orders"], crm["customers"]
    db = tmp_path / "crm.duckdb"
    con = duckdb.connect(str(db))
    con.register("o", orders)
    con.register("c", customers)
    con.execute("CREATE TABLE shop_orders AS SELECT * FROM o")
    con.execute("CREATE TABLE crm_customers AS SELECT * FROM c")
    con.close()
    monkeypatch.chdir(tmp_path)
    url = f"duckdb://{db}"
    assert main(["mapping", "--db", url, "--save-project"]) == 0
    assert "kept in sqltraits.toml" in capsys.readouterr().out
    assert Project().choices(url).mapping == CRM
    Project().save(url, horizon_days=120)
    args = ["train", "--db", url, "--model", "churn", "--estimator", "logistic"]
    assert main([*args, "--no-save", "--json", "--quiet"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert TableMapping.from_dict(card["mapping"]) == CRM
    assert card["horizon_days"] == 120
