"""Scoring on DuckDB and PostgreSQL: both paths agree with scikit-learn (and BTYD with numpy)
within 1e-9 on every row, the streamed path survives many batches, and bad requests or failed
runs leave the output table as it was."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline

from sqltraits_kit.errors import ConfigError, DataError, ModelLoadError
from sqltraits_kit.modelling.features import (
    FEATURE_COLUMNS,
    build_features,
    build_labels,
    data_end,
    profile_count,
)
from sqltraits_kit.modelling.registry import LoadedModel, Registry
from sqltraits_kit.traits.output import runs
from sqltraits_kit.traits.scoring import default_as_of, score
from sqltraits_kit.warehouse import connect
from tests.support.models import (
    HORIZON,
    _day,
    btyd_reference,
    card,
    linear_front,
    max_diff,
    output,
    sklearn_reference,
)

TOLERANCE = 1e-9
BTYD_COLUMNS = ["p_alive", "p_no_purchase_90d", "expected_purchases_90d", "expected_spend_90d"]


# --------------------------------------------------------------------------- shared models


def leftovers(wh) -> list[str]:
    return [t for t in wh.tables() if t.startswith(("_sqltraits_tmp_", "_sqltraits_staging_"))]


# --------------------------------------------------------------------------- tests


def test_linear_models_score_in_the_warehouse_and_match_sklearn(wh, trained, unique_name):
    registry, refs = trained
    result = score(wh, models=[refs["churn"], refs["ltv"]], table=unique_name, registry=registry)
    as_of = default_as_of(wh)
    assert result.as_of.date() == as_of
    assert result.rows == profile_count(wh, as_of=as_of) == 2_000
    churn, ltv = result.models
    for run in result.models:
        assert run.path == "warehouse", run.reason
        assert run.parity_rows == 2_000 and run.parity_max_diff <= TOLERANCE
        assert "translated to SQL" in run.reason
    got = output(wh, unique_name)
    ref = sklearn_reference(wh, registry, churn.ref, as_of)
    assert max_diff(got["churn_probability_90d"], ref) <= TOLERANCE
    ref = sklearn_reference(wh, registry, ltv.ref, as_of)
    assert max_diff(got["predicted_ltv_90d"], ref) <= TOLERANCE
    assert leftovers(wh) == []


def test_streamed_path_matches_sklearn_over_many_batches(wh, trained, unique_name, monkeypatch):
    from tests.support.models import spy_scoring_threads

    registry, refs = trained
    workers = spy_scoring_threads(monkeypatch)
    # 2,000 profiles in batches of 150: 14 batches, so a stream that stops after the first
    # batch (ibis #9444) cannot pass; the kit's own model scores them one per core at once
    result = score(wh, models=refs["gbm"], table=unique_name, registry=registry, batch_rows=150)
    assert workers == [None]  # default: one batch per core
    (run,) = result.models
    assert run.path == "streamed"
    assert "no SQL translation" in run.reason and "HistGradientBoostingClassifier" in run.reason
    assert result.rows == 2_000 and result.timings["streaming"] > 0
    got = output(wh, unique_name)
    ref = sklearn_reference(wh, registry, refs["gbm"], result.as_of)
    assert len(got) == len(ref) == 2_000
    assert max_diff(got["churn_probability_90d"], ref) <= TOLERANCE
    assert leftovers(wh) == []


def test_in_warehouse_and_streamed_paths_agree(wh, trained, unique_name):
    registry, refs = trained
    models = [refs["churn"], refs["ltv"], refs["btyd"]]
    inside = score(wh, models=models, table=unique_name, registry=registry, method="warehouse")
    streamed = score(
        wh,
        models=models,
        table=f"{unique_name}_s",
        registry=registry,
        method="streamed",
        batch_rows=333,
    )
    assert {m.path for m in inside.models} == {"warehouse"}
    assert {m.path for m in streamed.models} == {"streamed"}
    a, b = output(wh, unique_name), output(wh, f"{unique_name}_s")
    for column in ["churn_probability_90d", "predicted_ltv_90d", *BTYD_COLUMNS]:
        assert max_diff(a[column], b[column]) <= TOLERANCE, column


def test_btyd_scores_in_the_warehouse_match_numpy(wh, trained, unique_name):
    registry, refs = trained
    result = score(wh, models=refs["btyd"], table=unique_name, registry=registry)
    (run,) = result.models
    assert run.path == "warehouse", run.reason
    assert "2F1 looked up for" in run.reason and run.parity_max_diff <= TOLERANCE
    assert list(run.columns) == BTYD_COLUMNS
    got = output(wh, unique_name)
    ref = btyd_reference(wh, registry, refs["btyd"], result.as_of)
    for column in BTYD_COLUMNS:
        assert max_diff(got[column], ref[column]) <= TOLERANCE, column
    # no repeat purchase yet (frequency 0): alive by the model's definition
    assert (got["p_alive"] == 1.0).sum() > 100
    assert ((got["p_alive"] >= 0) & (got["p_alive"] <= 1)).all()


def test_churn_and_btyd_share_one_row_per_profile(duckdb_wh, trained):
    registry, refs = trained
    result = score(
        duckdb_wh, models=[refs["churn"], refs["btyd"]], table="churn_traits", registry=registry
    )
    table = duckdb_wh.table("churn_traits")
    assert table.columns == (
        "user_id",
        "churn_probability_90d",
        *BTYD_COLUMNS,
        "model_name",
        "model_version",
        "scored_at",
        "run_id",
    )
    assert table.schema()["scored_at"].timezone == "UTC"
    got = table.to_pandas()
    assert got["user_id"].is_unique and len(got) == result.rows == 2_000
    assert set(got["model_name"]) == {"churn,btyd"}
    assert set(got["model_version"]) == {"1,1"}
    assert set(got["run_id"]) == {result.run_id}
    assert got["scored_at"].iloc[0].to_pydatetime() == result.scored_at
    assert result.scored_at.tzinfo is not None and result.scored_at.utcoffset() == dt.timedelta(0)
    assert [r.run_id for r in runs(duckdb_wh, "churn_traits")] == [result.run_id]


def test_a_failed_parity_check_streams_instead_and_says_why(duckdb_wh, trained):
    registry, refs = trained
    # With a tolerance of 0 the exp() of the Poisson model cannot match to the last bit.
    result = score(
        duckdb_wh, models=refs["ltv"], table="ltv_traits", registry=registry, tolerance=0.0
    )
    (run,) = result.models
    assert run.path == "streamed"
    assert run.reason.startswith("parity check failed: max |SQL - scikit-learn|")
    assert 0 < run.parity_max_diff <= TOLERANCE
    ref = sklearn_reference(duckdb_wh, registry, refs["ltv"], result.as_of)
    assert max_diff(output(duckdb_wh, "ltv_traits")["predicted_ltv_90d"], ref) == 0.0
    # refusing to stream turns the same finding into an error, and nothing is written
    with pytest.raises(DataError, match="parity check failed"):
        score(
            duckdb_wh,
            models=refs["ltv"],
            table="ltv_traits",
            registry=registry,
            tolerance=0.0,
            method="warehouse",
        )
    assert [r.run_id for r in runs(duckdb_wh, "ltv_traits")] == [result.run_id]


def test_method_warehouse_refuses_a_model_without_sql_form(duckdb_wh, trained):
    registry, refs = trained
    with pytest.raises(ConfigError, match="cannot be scored in the warehouse"):
        score(duckdb_wh, models=refs["gbm"], registry=registry, method="warehouse")
    assert not duckdb_wh.has_table("churn_traits")


def test_as_of_picks_the_profiles_and_must_be_a_date(duckdb_wh, trained):
    registry, refs = trained
    end = data_end(duckdb_wh)
    assert default_as_of(duckdb_wh) == (_day(end) + dt.timedelta(days=1)).date()
    earlier = (_day(end) - dt.timedelta(days=400)).date()
    result = score(duckdb_wh, models=refs["churn"], registry=registry, as_of=earlier)
    assert result.as_of.date() == earlier
    assert result.rows == profile_count(duckdb_wh, as_of=earlier) < 2_000
    assert any("after as_of" in n for n in result.notes)  # trained on later data
    ref = sklearn_reference(duckdb_wh, registry, refs["churn"], earlier)
    assert max_diff(output(duckdb_wh, "churn_traits")["churn_probability_90d"], ref) <= TOLERANCE
    with pytest.raises(ConfigError, match="as_of must be a date"):
        score(duckdb_wh, models=refs["churn"], registry=registry, as_of="2026-05-01T12:30")
    with pytest.raises(ConfigError, match="ISO date"):
        score(duckdb_wh, models=refs["churn"], registry=registry, as_of="yesterday")


def _churn_180(wh, registry: Registry) -> str:
    """A churn model over 180 days, fitted like the session's 90-day one; its reference."""
    cutoff = _day(data_end(wh)) - dt.timedelta(days=180)
    feats = build_features(wh, as_of=cutoff)
    labels = build_labels(wh, cutoff=cutoff, horizon_days=180)
    frame = feats.join(labels, "profile_id").order_by("profile_id").to_pandas()
    model = Pipeline([*linear_front(), ("model", LogisticRegression(max_iter=2000))])
    model.fit(frame[list(FEATURE_COLUMNS)], frame["churned"])
    fitted = dataclasses.replace(card("churn_180", "churn", "logistic", cutoff), horizon_days=180)
    return registry.save(model, fitted).ref


def test_a_90_and_a_180_day_churn_model_share_one_output_table(wh, trained, unique_name, tmp_path):
    registry, refs = trained
    mine = Registry(tmp_path / "models")
    short = registry.load(*refs["churn"].split("@"))
    short_ref = mine.save(short.model, dataclasses.replace(short.card, version=0)).ref
    long_ref = _churn_180(wh, mine)
    result = score(wh, models=[short_ref, long_ref], table=unique_name, registry=mine)
    assert [m.columns for m in result.models] == [
        ("churn_probability_90d",),
        ("churn_probability_180d",),
    ]
    got = output(wh, unique_name)
    assert [c for c in got.columns if c.startswith("churn")] == [
        "churn_probability_90d",
        "churn_probability_180d",
    ]
    for ref, column in ((short_ref, "churn_probability_90d"), (long_ref, "churn_probability_180d")):
        assert max_diff(got[column], sklearn_reference(wh, mine, ref, result.as_of)) <= TOLERANCE
    # two models, two answers: more customers lapse over 180 days than over 90
    assert got["churn_probability_180d"].mean() != got["churn_probability_90d"].mean()
    assert leftovers(wh) == []


def test_two_models_of_one_kind_and_horizon_are_refused_before_anything_is_written(
    wh, trained, unique_name
):
    registry, refs = trained
    first = score(wh, models=refs["churn"], table=unique_name, registry=registry)
    # churn (logistic) and churn-gbm are both 90-day churn models: one column for two models
    with pytest.raises(ConfigError) as info:
        score(wh, models=[refs["churn"], refs["gbm"]], table=unique_name, registry=registry)
    assert str(info.value) == (
        f"models {refs['churn']} and {refs['gbm']} both write column 'churn_probability_90d' "
        "(both are 90-day churn models): score them into separate output tables, or train one "
        "over another horizon"
    )
    assert runs(wh, unique_name)[0].run_id == first.run_id  # the table is the first run's
    assert len(runs(wh, unique_name)) == 1 and leftovers(wh) == []


def test_bad_requests_are_clear_errors(duckdb_wh, trained, sample_file):
    registry, refs = trained
    with pytest.raises(ConfigError, match="both write column 'churn_probability_90d'"):
        score(duckdb_wh, models=[refs["churn"], refs["gbm"]], registry=registry)
    with pytest.raises(ModelLoadError, match="no model named 'nope'"):
        score(duckdb_wh, models="nope", registry=registry)
    with pytest.raises(ConfigError, match="lower snake_case"):
        score(duckdb_wh, models=refs["churn"], registry=registry, table="Churn Traits")
    with pytest.raises(ConfigError, match="no model to score"):
        score(duckdb_wh, models=[], registry=registry)
    with pytest.raises(ConfigError, match="method must be one of"):
        score(duckdb_wh, models=refs["churn"], registry=registry, method="fast")
    with pytest.raises(ConfigError, match="both a trait and the identifier"):
        score(duckdb_wh, models=refs["churn"], registry=registry, id_column="churn_probability_90d")
    ro = connect(f"duckdb:///{sample_file}", read_only=True)
    try:
        with pytest.raises(ConfigError, match="read-only"):
            score(ro, models=refs["churn"], registry=registry)
    finally:
        ro.close()
    assert not duckdb_wh.has_table("churn_traits")


def test_a_failed_run_leaves_the_previous_output_untouched(wh, trained, unique_name):
    registry, refs = trained
    first = score(wh, models=refs["churn"], table=unique_name, registry=registry)
    before = output(wh, unique_name)

    @dataclasses.dataclass
    class Report:
        ok: bool

        def summary(self) -> str:
            return "identifier_unique: 3 duplicates"

    seen = []

    def reject(staged):
        seen.append(staged.count().execute())
        return Report(ok=False)

    with pytest.raises(DataError, match=r"failed validation.*identifier_unique"):
        score(
            wh,
            models=[refs["churn"], refs["btyd"]],
            table=unique_name,
            registry=registry,
            validate=reject,
        )
    assert seen == [2_000]  # the hook saw the staged run
    after = output(wh, unique_name)
    pd.testing.assert_frame_equal(before, after)
    assert set(after["run_id"]) == {first.run_id}
    assert [r.run_id for r in runs(wh, unique_name)] == [first.run_id]
    assert leftovers(wh) == []


def test_scores_any_loaded_model_and_names_the_identifier(duckdb_wh, trained):
    """A model passed in directly (here a Ridge pipeline the registry does not store)."""
    registry, refs = trained
    churn = registry.load(*refs["churn"].split("@")[:1])
    cutoff = dt.datetime.fromisoformat(churn.card.cutoff)
    frame = (
        build_features(duckdb_wh, as_of=cutoff)
        .join(build_labels(duckdb_wh, cutoff=cutoff, horizon_days=HORIZON), "profile_id")
        .to_pandas()
    )
    ridge = Pipeline([*linear_front(), ("model", Ridge(alpha=1.0))])
    ridge.fit(frame[list(FEATURE_COLUMNS)], frame["ltv"])
    loaded = LoadedModel(
        ridge, dataclasses.replace(card("ridge", "ltv", "ridge", cutoff), version=7)
    )
    result = score(duckdb_wh, models=[loaded], table="ltv_traits", id_column="group_id")
    (run,) = result.models
    assert run.ref == "ridge@7" and run.path == "warehouse"
    got = output(duckdb_wh, "ltv_traits", "group_id")
    assert (got["predicted_ltv_90d"] >= 0).all()  # clipped at 0, as training evaluated it
    X = build_features(duckdb_wh, as_of=result.as_of).to_pandas().set_index("profile_id")
    ref = pd.Series(np.clip(ridge.predict(X[list(FEATURE_COLUMNS)]), 0, None), index=X.index)
    assert max_diff(got["predicted_ltv_90d"], ref) <= TOLERANCE


def test_scoring_never_replaces_an_input_table(duckdb_wh, tmp_path):
    from sqltraits_kit.errors import ConfigError
    from sqltraits_kit.traits.scoring import score

    before = duckdb_wh.row_counts(["users"])
    with pytest.raises(ConfigError, match="'users' exists and is not an output table"):
        score(duckdb_wh, models=["anything"], table="users", registry=tmp_path)
    assert duckdb_wh.row_counts(["users"]) == before


@pytest.fixture(scope="module")
def pareto_registry(sample_file, tmp_path_factory) -> tuple[Registry, dict[str, str]]:
    """Pareto/NBD churn and LTV candidates (the ``pnbd`` estimator) fitted on the sample."""
    from sqltraits_kit.modelling.estimators import make_estimator

    registry = Registry(tmp_path_factory.mktemp("pnbd"))
    wh = connect(f"duckdb:///{sample_file}", read_only=True)
    try:
        cutoff = _day(data_end(wh)) - dt.timedelta(days=2 * HORIZON)
        X = build_features(wh, as_of=cutoff).to_pandas()
    finally:
        wh.close()
    refs = {}
    for kind in ("churn", "ltv"):
        model = make_estimator(kind, "pnbd", horizon_days=HORIZON).fit(X, None)
        features = [str(c) for c in model.feature_names_in_]
        saved = registry.save(
            model,
            dataclasses.replace(card(f"{kind}-pnbd", kind, "pnbd", cutoff), features=features),
        )
        refs[kind] = saved.ref
    return registry, refs


def test_pareto_nbd_is_refused_by_the_warehouse_and_streamed_right(
    wh, pareto_registry, unique_name
):
    """Pareto/NBD has no SQL form: ``auto`` streams it and says why; ``warehouse`` refuses."""
    registry, refs = pareto_registry
    models = [refs["churn"], refs["ltv"]]
    result = score(wh, models=models, table=unique_name, registry=registry, batch_rows=700)
    assert [m.path for m in result.models] == ["streamed", "streamed"]
    for run in result.models:
        assert run.reason.startswith("no SQL translation: estimator 'model'"), run.reason
        assert "BtydOnFeatures" in run.reason
    got = output(wh, unique_name)
    churn = sklearn_reference(wh, registry, refs["churn"], result.as_of)
    ltv = sklearn_reference(wh, registry, refs["ltv"], result.as_of)
    assert max_diff(got["churn_probability_90d"], churn) <= TOLERANCE
    assert max_diff(got["predicted_ltv_90d"], ltv) <= TOLERANCE
    assert churn.min() > 0 and churn.max() < 1 and ltv.sum() > 0
    with pytest.raises(ConfigError, match=r"cannot be scored in the warehouse: .*BtydOnFeatures"):
        score(wh, models=refs["churn"], table=f"{unique_name}_w", registry=registry,
              method="warehouse")  # fmt: skip
    assert not wh.has_table(f"{unique_name}_w")
