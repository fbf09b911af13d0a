"""Output columns named from the model and its horizon (issue 18), and what existing users meet:
a trait set naming ``churn_probability``, or an output table scored before the rename, is an
error naming the missing column and the one the model now writes -- in the library, in
``sqltraits validate`` and before ``sqltraits run`` scores anything."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pyarrow as pa
import pytest

from sqltraits_kit.cli import main
from sqltraits_kit.errors import ConfigError
from sqltraits_kit.modelling.registry import ModelCard
from sqltraits_kit.traits.output import column_model, renamed_column, score_columns
from sqltraits_kit.traits.scoring import check_distinct_columns, trait_columns
from sqltraits_kit.traits.traitset import TraitSet, TraitSetError, resolve
from sqltraits_kit.workflows.catalog import missing_columns, renamed_columns
from sqltraits_kit.workflows.pipeline import run_trait_set
from tests.support.models import card
from tests.support.traits import CHURN, LTV, churn_traits_table

OLD_NAMES = {"churn_probability_90d": "churn_probability", "predicted_ltv_90d": "predicted_ltv"}
WRITES = (
    "the model now writes 'churn_probability_90d' (output columns carry the model's horizon): "
    "read 'churn_probability_90d' instead"
)
SCORED_BEFORE = (
    "this table was scored before output columns carried the model's horizon (it has "
    "'churn_probability'): score it again to write 'churn_probability_90d'"
)


def old_table(n: int = 50) -> pa.Table:
    """An output table as the kit wrote it up to 0.1.0: no horizon in the names."""
    table = churn_traits_table(n)
    return table.rename_columns([OLD_NAMES.get(c, c) for c in table.column_names])


def old_churn_set(path=None) -> TraitSet:
    """traitsets/churn.toml as shipped up to 0.1.0 (it read ``churn_probability``)."""
    text = CHURN.read_text().replace("churn_probability_90d", "churn_probability")
    if path is None:
        return TraitSet.loads(text)
    path.write_text(text)
    return TraitSet.load(path)


def _card(kind: str, horizon: int, name: str | None = None) -> ModelCard:
    made = card(name or kind, kind, "logistic", dt.datetime(2026, 1, 1), version=1)
    return dataclasses.replace(made, horizon_days=horizon)


# --------------------------------------------------------------------------- the names


def test_columns_are_named_from_the_kind_and_the_horizon():
    assert trait_columns(_card("churn", 180)) == ["churn_probability_180d"]
    assert trait_columns(_card("ltv", 90)) == ["predicted_ltv_90d"]
    assert trait_columns(_card("btyd", 30)) == [
        "p_alive",  # the state today: no horizon in it
        "p_no_purchase_30d",
        "expected_purchases_30d",
        "expected_spend_30d",
    ]
    assert score_columns("nope", 90) == []
    for kind in ("churn", "ltv", "btyd"):
        for column in score_columns(kind, 365):
            assert column_model(column) == (kind, None if column == "p_alive" else 365)
    assert column_model("churn_probability") == ("churn", None)  # the old name still says churn
    assert column_model("predicted_ltv") == ("ltv", None)
    assert column_model("churn_probability_x") == column_model("orders_90d") == (None, None)


def test_two_models_of_one_kind_and_horizon_are_named_in_the_error():
    check_distinct_columns([_card("churn", 90), _card("churn", 180, "churn_long")])
    with pytest.raises(ConfigError, match="models churn@1 and churn_v2@1 both write"):
        check_distinct_columns([_card("churn", 90), _card("churn", 90, "churn_v2")])


def test_the_hint_says_what_a_missing_column_became():
    assert renamed_column("churn_probability", ["user_id", "churn_probability_90d"]).startswith(
        WRITES
    )
    assert renamed_column("predicted_ltv", []) == (
        "output columns now carry the model's horizon: a 90-day model writes "
        "'predicted_ltv_90d', not 'predicted_ltv'"
    )
    assert renamed_column("churn_probability_90d", ["churn_probability"]) == SCORED_BEFORE
    assert renamed_column("churn_probability_90d", ["churn_probability_180d"]) == (
        "'churn_probability_180d' is there instead, from a 180-day model: read that column, "
        "or score with a 90-day model"
    )
    assert renamed_column("expected_spend_90d", ["expected_spend_30d"]).startswith(
        "'expected_spend_30d' is there instead, from a 30-day model"
    )
    assert renamed_column("orders", ["user_id"]) == renamed_column("p_alive", []) == ""
    # the pages' list of what a trait set lacks, with the notes
    ts = old_churn_set()
    missing = missing_columns(ts, written=["user_id", "churn_probability_90d", "p_alive"])
    assert missing == ["churn_probability"]
    (note,) = renamed_columns(missing, columns=["churn_probability_90d", "p_alive"])
    assert note.startswith(f"churn_probability: {WRITES}")


# --------------------------------------------------------------------------- existing users


def test_an_old_output_table_is_an_error_that_says_to_score_again(wh, unique_name):
    wh.con.create_table(unique_name, obj=old_table())
    ts = TraitSet.load(CHURN).with_(table=unique_name)
    with pytest.raises(TraitSetError) as info:
        resolve(wh, ts)
    assert info.value.key == "traits.churn_probability_90d"
    message = str(info.value)
    assert f"column 'churn_probability_90d' is not in the table {unique_name}" in message
    assert message.endswith(SCORED_BEFORE)
    ltv = TraitSet.load(LTV).with_(table=unique_name)
    with pytest.raises(TraitSetError, match="it has 'predicted_ltv'"):
        resolve(wh, ltv)


def test_an_old_trait_set_is_an_error_naming_the_new_column(wh, unique_name):
    wh.con.create_table(unique_name, obj=churn_traits_table(50))
    ts = old_churn_set().with_(table=unique_name)
    with pytest.raises(TraitSetError) as info:
        resolve(wh, ts)
    assert info.value.key == "traits.churn_probability"
    assert f"column 'churn_probability' is not in the table {unique_name}" in str(info.value)
    assert WRITES in str(info.value)
    # a tier over the old name, with its traits already moved: the same note, at its key
    half = ts.with_(traits={"churn_probability_90d": "churn_probability", "p_alive": "p_alive"})
    with pytest.raises(TraitSetError) as info:
        resolve(wh, half)
    assert info.value.key == "derived[0].column" and WRITES in str(info.value)


def test_validate_on_the_command_line_explains_it_without_a_traceback(tmp_path, capsys):
    from sqltraits_kit.warehouse import connect

    url = f"duckdb:///{tmp_path / 'traits.duckdb'}"
    wh = connect(url, create=True)
    wh.con.create_table("churn_traits", obj=churn_traits_table(50))
    wh.close()
    old = old_churn_set(tmp_path / "churn.toml")
    code = main(["validate", "--db", url, "--trait-set", str(old.path)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "traits.churn_probability" in err and WRITES in err


def test_run_stops_before_scoring_when_the_trait_set_reads_an_old_name(
    duckdb_wh, trained, tmp_path
):
    registry, _ = trained  # churn, ltv and btyd: the models churn.toml names
    old = old_churn_set(tmp_path / "churn.toml")
    steps: list[str] = []
    with pytest.raises(TraitSetError) as info:
        run_trait_set(
            duckdb_wh, old, registry=registry, dry_run=True, progress=lambda m, _: steps.append(m)
        )
    assert info.value.key == "traits.churn_probability" and WRITES in str(info.value)
    assert steps == [] and not duckdb_wh.has_table("churn_traits")  # not scored, not written
    # the shipped trait set, read as it is now, scores and checks cleanly
    result = run_trait_set(duckdb_wh, TraitSet.load(CHURN), registry=registry, dry_run=True)
    assert result.contract is not None and result.contract.ok
    assert "churn_probability_90d" in duckdb_wh.table("churn_traits").columns
