"""Training end to end on the demo sample: out-of-time evaluation, the reference predictor,
the registry, and the charts built from a result."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sqltraits_kit.errors import ConfigError, DataError
from sqltraits_kit.modelling import charts
from sqltraits_kit.modelling.features import (
    FEATURE_COLUMNS,
    TableMapping,
    build_features,
    data_end,
    profile_count,
)
from sqltraits_kit.modelling.registry import Registry
from sqltraits_kit.modelling.training import default_cutoff, reference_parameters, train_model
from sqltraits_kit.warehouse import connect

CHURN_METRICS = {"auc", "pr_auc", "brier", "top_decile_lift", "base_rate"}
LTV_METRICS = {"mae", "spearman", "gini", "total_pct_error", "mean_actual", "mean_predicted"}
TRUTH = {"r": 0.75, "alpha": 6.0, "a": 0.9, "b": 3.5, "p": 6.0, "q": 3.5, "v": 30.0}


@pytest.fixture(scope="module")
def sample_wh(sample_file: Path):
    wh = connect(f"duckdb:///{sample_file}", read_only=True)
    yield wh
    wh.close()


@pytest.fixture(scope="module")
def churn_run(sample_wh, tmp_path_factory):
    steps: list[tuple[str, float]] = []
    registry = Registry(tmp_path_factory.mktemp("models"))
    result = train_model(
        sample_wh,
        kind="churn",
        registry=registry,
        progress=lambda message, fraction: steps.append((message, fraction)),
    )
    return result, registry, steps


def test_churn_is_trained_and_tested_out_of_time(sample_wh, churn_run):
    result, _, _ = churn_run
    card = result.card
    end = data_end(sample_wh)
    cutoff = dt.date.fromisoformat(card.cutoff)
    test_cutoff = dt.date.fromisoformat(card.test_cutoff)
    assert cutoff == default_cutoff(sample_wh) == end.date() - dt.timedelta(days=180)
    # training labels end where the test history starts: no test outcome is seen in training
    assert test_cutoff - cutoff == dt.timedelta(days=card.horizon_days) == dt.timedelta(days=90)
    assert card.training_rows == profile_count(sample_wh, as_of=cutoff)
    assert card.test_rows == profile_count(sample_wh, as_of=test_cutoff) > card.training_rows
    assert (
        card.kind == "churn" and card.estimator == "gbm" and card.features == list(FEATURE_COLUMNS)
    )
    assert card.mapping == TableMapping().to_dict()
    assert card.data_fingerprint.startswith("sha256:")
    assert {"scikit-learn", "skops", "ibis-framework"} <= set(card.library_versions)
    json.dumps(card.to_dict(), allow_nan=False)


def test_churn_metrics_sit_beside_the_reference(churn_run):
    result, _, _ = churn_run
    m = result.metrics
    assert set(m) >= CHURN_METRICS
    assert {f"reference_{k}" for k in CHURN_METRICS - {"base_rate"}} <= set(m)
    assert 0.7 < m["auc"] <= 1 and 0.7 < m["reference_auc"] <= 1
    assert 0 < m["brier"] < 0.25
    assert any("true parameters" in note for note in result.card.notes)
    assert {"roc", "reliability", "gain", "importance", "reference_roc"} <= set(result.tables)
    assert set(result.tables["importance"]["feature"]) == set(FEATURE_COLUMNS)


def test_saved_model_loads_and_predicts_the_same(sample_wh, churn_run):
    result, registry, _ = churn_run
    assert result.saved and result.card.version == 1
    loaded = registry.load("churn")
    X = build_features(sample_wh, as_of=result.card.test_cutoff).limit(200).to_pandas()
    X = X[loaded.card.features]
    np.testing.assert_allclose(loaded.model.predict_proba(X), result.model.predict_proba(X))


def test_progress_is_reported_in_order(churn_run):
    _, _, steps = churn_run
    fractions = [f for _, f in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(steps) >= 6
    assert any("fitting gbm" in message for message, _ in steps)


def test_churn_charts(churn_run):
    result, _, _ = churn_run
    figures = charts.evaluation_figures("churn", result.tables)
    assert set(figures) == {"ROC", "Calibration", "Cumulative gain", "Feature importance"}
    assert len(figures["ROC"].data) == 3  # chance, model, reference
    table = charts.metrics_table(result.metrics)
    row = table.set_index("metric").loc["ROC AUC"]
    assert row["model"] == result.metrics["auc"]
    assert row["reference"] == result.metrics["reference_auc"]


@pytest.mark.parametrize("estimator", ["gbm", "poisson"])
def test_ltv_regressors(sample_wh, estimator):
    result = train_model(sample_wh, kind="ltv", estimator=estimator, horizon_days=60)
    m = result.metrics
    assert set(m) >= LTV_METRICS and "reference_gini" in m and "reference_mae" in m
    assert m["gini"] > 0.3 and m["spearman"] > 0.2
    assert abs(m["total_pct_error"]) < 50
    assert result.card.cutoff == (data_end(sample_wh).date() - dt.timedelta(days=120)).isoformat()
    figures = charts.evaluation_figures("ltv", result.tables)
    assert set(figures) == {"Deciles", "Revenue gain", "Predicted vs actual", "Feature importance"}
    assert len(result.tables["deciles"]) == 10


def test_btyd_pair(sample_wh, tmp_path):
    registry = Registry(tmp_path)
    result = train_model(sample_wh, kind="ltv", estimator="btyd", registry=registry)
    card = result.card
    assert card.kind == "btyd" and card.name == "ltv" and card.artifact is None
    assert set(card.params["bgnbd"]) == {"r", "alpha", "a", "b"}
    assert set(card.params["gamma_gamma"]) == {"p", "q", "v"}
    assert set(card.metrics) >= CHURN_METRICS | LTV_METRICS
    assert {"reference_auc", "reference_gini"} <= set(card.metrics)
    loaded = registry.load("ltv")
    assert loaded.model.params() == card.params
    figures = charts.evaluation_figures("btyd", result.tables)
    assert {"ROC", "Deciles", "Predicted vs actual"} <= set(figures)


def test_without_sample_truth_there_is_no_reference(duckdb_wh):
    duckdb_wh.con.drop_table("sample_truth")
    assert reference_parameters(duckdb_wh) is None
    result = train_model(duckdb_wh, kind="churn", estimator="logistic")
    assert "auc" in result.metrics
    assert not any(k.startswith("reference_") for k in result.metrics)
    assert not any(k.startswith("reference_") for k in result.tables)
    assert "reference" not in " ".join(result.card.notes)


def test_training_never_sees_the_test_outcomes(duckdb_wh):
    """Orders added inside the test horizon change the test metrics, not the training data."""
    cutoff = dt.date(2026, 3, 1)
    before = train_model(duckdb_wh, kind="churn", estimator="logistic", cutoff=cutoff)
    test_cutoff = pd.Timestamp(before.card.test_cutoff)
    ids = build_features(duckdb_wh, as_of=test_cutoff).profile_id.to_pandas()[::3]
    orders = pd.DataFrame({"user_id": ids, "timestamp": test_cutoff + pd.Timedelta(days=5)})
    orders = orders.assign(revenue=80.0).reindex(columns=duckdb_wh.table("order_completed").columns)
    duckdb_wh.con.insert("order_completed", orders)
    after = train_model(duckdb_wh, kind="churn", estimator="logistic", cutoff=cutoff)
    assert after.card.data_fingerprint == before.card.data_fingerprint
    assert after.metrics["base_rate"] < before.metrics["base_rate"]


def test_sampling_caps_the_rows_pulled(sample_wh):
    result = train_model(sample_wh, kind="churn", estimator="logistic", max_rows=500)
    total = profile_count(sample_wh, as_of=result.card.cutoff)
    step = -(-total // 500)
    assert result.card.training_rows == total // step <= 500
    assert any(f"every {step}th profile" in note for note in result.card.notes)


def test_bad_requests_are_explained(sample_wh):
    latest = default_cutoff(sample_wh)
    with pytest.raises(ConfigError, match=f"Choose a cutoff on or before {latest}"):
        train_model(sample_wh, kind="churn", cutoff=latest + dt.timedelta(days=1))
    with pytest.raises(ConfigError, match="choose from: gbm, logistic, btyd"):
        train_model(sample_wh, kind="churn", estimator="poisson")
    with pytest.raises(ConfigError, match="kind must be one of"):
        train_model(sample_wh, kind="forecast")
    with pytest.raises(ConfigError, match="horizon_days"):
        train_model(sample_wh, kind="churn", horizon_days=0)
    with pytest.raises(DataError, match="choose a later cutoff"):
        train_model(sample_wh, kind="churn", cutoff="2020-01-01")
    with pytest.raises(ConfigError, match="'amount' not found"):
        train_model(sample_wh, kind="ltv", mapping=TableMapping(order_revenue="amount"))


@pytest.mark.postgres
def test_postgres_trains_on_the_same_rows(sample_wh, postgres_wh):
    runs = [
        train_model(wh, kind="churn", estimator="logistic", cutoff="2026-04-01")
        for wh in (sample_wh, postgres_wh)
    ]
    duck, pg = runs
    assert pg.card.data_fingerprint == duck.card.data_fingerprint
    assert pg.card.training_rows == duck.card.training_rows
    assert pg.metrics["auc"] == pytest.approx(duck.metrics["auc"], abs=1e-9)
    assert pg.metrics["reference_auc"] == pytest.approx(duck.metrics["reference_auc"], abs=1e-9)


@pytest.mark.slow
def test_acceptance_on_a_larger_sample(tmp_path):
    """The issue's bar, on 20,000 customers: an orders-only model reaches the reference AUC,
    web activity beats it, and the BG/NBD fit recovers the true parameters."""
    from sqltraits_kit.warehouse.sample import build_sample

    path = tmp_path / "s20k.duckdb"
    build_sample(path, customers=20_000, seed=7)
    wh = connect(f"duckdb:///{path}", read_only=True)
    try:
        orders_only = TableMapping(tracks_table=None, pages_table=None)
        plain = train_model(wh, kind="churn", mapping=orders_only).metrics
        assert plain["auc"] == pytest.approx(plain["reference_auc"], rel=0.03)
        full = train_model(wh, kind="churn").metrics
        assert full["auc"] > full["reference_auc"]
        params = train_model(wh, kind="btyd").card.params["bgnbd"]
        for name, value in params.items():
            assert value == pytest.approx(TRUTH[name], rel=0.2), name
    finally:
        wh.close()
