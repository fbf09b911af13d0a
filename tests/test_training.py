"""Training end to end on the demo sample: stacked snapshots, the champion chosen on a validation
window, out-of-time evaluation beside the baselines and the reference predictor, the refit, the
registry, and the charts built from a result."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sqltraits_kit.errors import ConfigError, DataError
from sqltraits_kit.formatting import metric_label
from sqltraits_kit.modelling import charts
from sqltraits_kit.modelling.estimators import CANDIDATES
from sqltraits_kit.modelling.features import (
    FEATURE_COLUMNS,
    TableMapping,
    build_features,
    build_labels,
    data_end,
    data_span,
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


def _days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


def test_churn_is_trained_on_stacked_snapshots_and_tested_out_of_time(sample_wh, churn_run):
    result, _, _ = churn_run
    card = result.card
    end = data_end(sample_wh)
    cutoff = dt.date.fromisoformat(card.cutoff)
    test_cutoff = dt.date.fromisoformat(card.test_cutoff)
    assert cutoff == default_cutoff(sample_wh) == end.date() - _days(180)
    # training labels end where the test history starts: no test outcome is seen in training
    assert test_cutoff - cutoff == _days(card.horizon_days) == _days(90)
    # three snapshots a horizon apart, the latest at the training cutoff
    stacked = [cutoff - _days(90 * i) for i in range(3)]
    assert card.training_cutoffs == [d.isoformat() for d in stacked]
    if card.estimator in ("bgnbd", "mbgnbd", "pnbd"):  # BTYD fits one snapshot: a customer once
        assert card.training_rows == profile_count(sample_wh, as_of=cutoff)
    else:
        assert card.training_rows == sum(profile_count(sample_wh, as_of=d) for d in stacked)
    assert card.test_rows == profile_count(sample_wh, as_of=test_cutoff)
    assert card.kind == "churn" and card.estimator in CANDIDATES["churn"]
    assert set(card.features) <= set(FEATURE_COLUMNS)
    assert card.mapping == TableMapping().to_dict()
    assert card.data_fingerprint.startswith("sha256:")
    assert {"scikit-learn", "skops", "ibis-framework"} <= set(card.library_versions)
    json.dumps(card.to_dict(), allow_nan=False)


def test_the_champion_is_chosen_on_a_validation_window_before_the_test(churn_run):
    card = churn_run[0].card
    sel = card.selection
    assert sel["selected_by"] == "auc"
    # validated at the training cutoff, on models fitted a horizon earlier: not the test window
    assert sel["validation_cutoff"] == card.cutoff != card.test_cutoff
    assert (
        sel["validation_fit_cutoffs"][0]
        == (dt.date.fromisoformat(card.cutoff) - _days(90)).isoformat()
    )
    assert set(sel["candidates"]) == set(CANDIDATES["churn"])
    for name, figures in sel["candidates"].items():
        assert figures["validation"]["auc"] is not None, name
        assert figures["test"]["auc"] is not None, name
    best = max(sel["candidates"], key=lambda n: sel["candidates"][n]["validation"]["auc"])
    assert sel["champion"] == card.estimator == best
    assert sel["reason"].startswith("highest validation ROC AUC")
    assert card.metrics["auc"] == pytest.approx(sel["candidates"][best]["test"]["auc"])
    assert len(sel["blend_members"]) == 3  # one per family
    assert set(sel["baselines_validation"]) == {"recency", "recency_frequency", "btyd"}


def test_the_saved_model_is_refit_on_the_latest_window(churn_run):
    result, _, _ = churn_run
    card = result.card
    test_cutoff = dt.date.fromisoformat(card.test_cutoff)
    assert card.refit["cutoffs"] == [(test_cutoff - _days(90 * i)).isoformat() for i in range(3)]
    assert card.refit["data_fingerprint"] != card.data_fingerprint
    assert result.model is not result.tested_model


def test_churn_metrics_sit_beside_the_baselines_and_the_reference(churn_run):
    result, _, _ = churn_run
    m = result.metrics
    assert set(m) >= CHURN_METRICS
    assert {f"reference_{k}" for k in CHURN_METRICS - {"base_rate"}} <= set(m)
    assert 0.7 < m["auc"] <= 1 and 0.7 < m["reference_auc"] <= 1
    assert 0 < m["brier"] < 0.25
    assert any("true parameters" in note for note in result.card.notes)
    assert {"roc", "reliability", "gain", "importance", "reference_roc"} <= set(result.tables)
    assert {"baseline_roc", "baseline_gain"} <= set(result.tables)
    assert set(result.tables["importance"]["feature"]) == set(result.card.features)
    card = result.card
    assert set(card.baselines) == {"recency", "recency_frequency", "btyd"}
    assert card.baselines["recency"]["brier"] is None  # a ranking rule has no probability
    rows = {row["metric"]: row for row in card.comparison}
    assert set(rows) == {"auc", "pr_auc", "top_decile_lift", "brier"}
    best = max(card.baselines.values(), key=lambda b: b["auc"])["auc"]
    assert rows["auc"]["baseline"] == best and rows["auc"]["model"] == m["auc"]
    # every metric the model does not beat has a warning, and only those
    losing = [r["metric"] for r in card.comparison if not r["beats"]]
    assert len(card.warnings) == len(losing)
    assert all(
        f"on {metric_label(metric)}:" in w for metric, w in zip(losing, card.warnings, strict=True)
    )
    # on the sample the model beats every naive rule by a margin
    assert rows["auc"]["beats"] and m["auc"] > best + 0.02


def test_the_baselines_are_the_rules_they_say(sample_wh, churn_run):
    """Recomputed from the warehouse, independently of training."""
    from sklearn.metrics import roc_auc_score

    card = churn_run[0].card
    feats = build_features(sample_wh, as_of=card.test_cutoff)
    labels = build_labels(sample_wh, cutoff=card.test_cutoff, horizon_days=90)
    frame = feats.join(labels, "profile_id").to_pandas()
    recency = frame["days_since_last_order"]
    auc = roc_auc_score(frame["churned"], recency)
    assert card.baselines["recency"]["auc"] == pytest.approx(auc, abs=1e-12)
    rule = recency / (frame["orders_count"] + 1)
    auc = roc_auc_score(frame["churned"], rule)
    assert card.baselines["recency_frequency"]["auc"] == pytest.approx(auc, abs=1e-12)


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
    assert any("candidates for the validation window" in message for message, _ in steps)
    assert any(message.startswith("refitting") for message, _ in steps)


def test_churn_charts(churn_run):
    result, _, _ = churn_run
    figures = charts.evaluation_figures("churn", result.tables)
    assert set(figures) == {"ROC", "Calibration", "Cumulative gain", "Feature importance"}
    names = [trace.name for trace in figures["ROC"].data]
    assert names[:3] == ["chance", "model", "reference (true parameters)"]
    assert names[3].startswith("baseline: ")  # the best baseline's curve beside the model's
    table = charts.metrics_table(result.metrics, result.card.comparison)
    row = table.set_index("metric").loc["ROC AUC"]
    assert row["model"] == result.metrics["auc"]
    assert row["reference"] == result.metrics["reference_auc"]
    assert row["best baseline"] == max(b["auc"] for b in result.card.baselines.values())
    assert bool(row["beats it"]) is True
    candidates = charts.candidates_table(result.card.selection)
    assert candidates["champion"].sum() == 1 and len(candidates) == len(CANDIDATES["churn"])


@pytest.mark.parametrize("estimator", ["gbm", "poisson", "tweedie", "mbgnbd"])
def test_ltv_regressors(sample_wh, estimator):
    result = train_model(sample_wh, kind="ltv", estimator=estimator, horizon_days=60)
    m = result.metrics
    assert result.card.estimator == estimator and result.card.selection is None
    assert set(m) >= LTV_METRICS and "reference_gini" in m and "reference_mae" in m
    assert set(result.card.baselines) == {"zero", "past_rate", "btyd"}
    zero = result.card.baselines["zero"]
    assert zero["mae"] == pytest.approx(m["mean_actual"]) and zero["total_pct_error"] == -100
    assert m["gini"] > 0.3 and m["spearman"] > 0.2
    assert abs(m["total_pct_error"]) < 50
    assert result.card.cutoff == (data_end(sample_wh).date() - dt.timedelta(days=120)).isoformat()
    figures = charts.evaluation_figures("ltv", result.tables)
    assert set(figures) == {"Deciles", "Revenue gain", "Predicted vs actual", "Feature importance"}
    assert len(result.tables["deciles"]) == 10
    assert figures["Revenue gain"].data[-1].name.startswith("baseline: ")


def test_ltv_auto_on_the_sample(sample_wh):
    result = train_model(sample_wh, kind="ltv")
    card = result.card
    assert card.selection["selected_by"] == "mae"
    assert set(card.selection["candidates"]) == set(CANDIDATES["ltv"])
    best = min(
        card.selection["candidates"],
        key=lambda n: card.selection["candidates"][n]["validation"]["mae"],
    )
    assert card.estimator == best
    assert card.selection["reason"].startswith("lowest validation MAE")
    assert {row["metric"] for row in card.comparison} == {
        "mae",
        "gini",
        "spearman",
        "total_pct_error",
    }


def test_btyd_pair(sample_wh, tmp_path):
    registry = Registry(tmp_path)
    result = train_model(sample_wh, kind="ltv", estimator="btyd", registry=registry)
    card = result.card
    assert card.kind == "btyd" and card.name == "ltv" and card.artifact is None
    assert set(card.params["bgnbd"]) == {"r", "alpha", "a", "b"}
    assert set(card.params["gamma_gamma"]) == {"p", "q", "v"}
    assert set(card.metrics) >= CHURN_METRICS | LTV_METRICS
    assert {"reference_auc", "reference_gini"} <= set(card.metrics)
    # judged as a churn and as an LTV model, against the rules (its own BTYD would be itself)
    assert set(card.baselines) == {"recency", "recency_frequency", "zero", "past_rate"}
    assert {"auc", "mae"} <= {row["metric"] for row in card.comparison}
    # tested at the training cutoff, saved as refit at the test cutoff
    assert card.training_cutoffs == [card.cutoff]
    assert card.refit["cutoffs"] == [card.test_cutoff]
    assert card.refit["params_tested"] != card.params
    loaded = registry.load("ltv")
    assert loaded.model.params() == card.params == result.model.params()
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


def test_training_and_the_choice_never_see_the_test_outcomes(duckdb_wh):
    """Orders added inside the test horizon change the test metrics and the refit, not the
    tested model's data, nor the validation figures the champion was chosen on."""
    cutoff = dt.date(2026, 3, 1)
    before = train_model(duckdb_wh, kind="churn", cutoff=cutoff)
    test_cutoff = pd.Timestamp(before.card.test_cutoff)
    ids = build_features(duckdb_wh, as_of=test_cutoff).profile_id.to_pandas()[::3]
    orders = pd.DataFrame({"user_id": ids, "timestamp": test_cutoff + pd.Timedelta(days=5)})
    orders = orders.assign(revenue=80.0).reindex(columns=duckdb_wh.table("order_completed").columns)
    duckdb_wh.con.insert("order_completed", orders)
    after = train_model(duckdb_wh, kind="churn", cutoff=cutoff)
    assert after.card.data_fingerprint == before.card.data_fingerprint
    assert after.metrics["base_rate"] < before.metrics["base_rate"]
    assert after.card.refit["data_fingerprint"] != before.card.refit["data_fingerprint"]
    sel_a, sel_b = after.card.selection, before.card.selection
    assert sel_a["champion"] == sel_b["champion"]
    for name, figures in sel_b["candidates"].items():
        assert sel_a["candidates"][name]["validation"] == figures["validation"], name


def test_sampling_caps_the_rows_pulled(sample_wh):
    result = train_model(sample_wh, kind="churn", estimator="logistic", max_rows=500)
    expected = 0
    for when in result.card.training_cutoffs:
        total = profile_count(sample_wh, as_of=when)
        step = -(-total // 500)
        expected += -(-total // step)  # row numbers 0, step, 2 step, ...
        assert -(-total // step) <= 500
        assert any(f"rows at {when}: every {step}th profile" in n for n in result.card.notes)
    assert result.card.training_rows == expected


def test_too_little_history_for_validation_falls_back_and_says_so(sample_wh):
    # The sample's log starts on 2024-11-02: a horizon before 2025-02-01 it is 1 day old.
    result = train_model(sample_wh, kind="churn", cutoff="2025-02-01", snapshots=2)
    card = result.card
    assert card.estimator == "logistic" and card.selection is None
    assert any("too little history for a validation window" in n for n in card.notes)
    assert card.training_cutoffs == ["2025-02-01"]  # the too young earlier snapshot left out


def test_a_log_younger_than_the_longest_window_is_refused(sample_wh):
    with pytest.raises(DataError, match=r"the log starts on 2024-11-02, less than the 90-day"):
        train_model(sample_wh, kind="churn", estimator="logistic", cutoff="2025-01-30")


def test_training_rows_need_the_longest_window_of_history_before_them(sample_wh):
    # A snapshot where the log is younger than the 90-day window would have every windowed
    # feature equal to its total; it is left out of training (never the test rows).
    start, _end = data_span(sample_wh)
    cutoff = (start + _days(100)).date()
    result = train_model(
        sample_wh, kind="churn", estimator="logistic", cutoff=cutoff, horizon_days=30
    )
    card = result.card
    assert card.training_cutoffs == [cutoff.isoformat()]
    for j in (2, 3):  # 70 and 40 days after the start
        when = (start + _days(100 - 30 * (j - 1))).date()
        assert any(f"rows at {when} left out of training" in n for n in card.notes), card.notes
    assert card.test_rows == profile_count(sample_wh, as_of=card.test_cutoff)


def test_one_snapshot_and_no_refit_is_the_single_cutoff_protocol(sample_wh):
    result = train_model(sample_wh, kind="churn", estimator="logistic", snapshots=1, refit=False)
    card = result.card
    assert card.training_cutoffs == [card.cutoff] and card.refit is None
    assert card.training_rows == profile_count(sample_wh, as_of=card.cutoff)
    assert result.model is result.tested_model


def test_bad_requests_are_explained(sample_wh):
    latest = default_cutoff(sample_wh)
    with pytest.raises(ConfigError, match=f"Choose a cutoff on or before {latest}"):
        train_model(sample_wh, kind="churn", cutoff=latest + dt.timedelta(days=1))
    with pytest.raises(ConfigError, match="choose from: auto, logistic, gbm, gbm_small"):
        train_model(sample_wh, kind="churn", estimator="poisson")
    with pytest.raises(ConfigError, match="snapshots must be"):
        train_model(sample_wh, kind="churn", snapshots=0)
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
    for name, figures in duck.card.baselines.items():
        for metric, value in figures.items():
            if value is not None:
                assert pg.card.baselines[name][metric] == pytest.approx(value, abs=1e-9)


@pytest.mark.postgres
def test_postgres_chooses_the_same_champion(sample_wh, postgres_wh):
    duck, pg = (train_model(wh, kind="ltv", cutoff="2026-04-01") for wh in (sample_wh, postgres_wh))
    assert pg.card.estimator == duck.card.estimator
    assert pg.card.data_fingerprint == duck.card.data_fingerprint
    assert pg.card.refit["data_fingerprint"] == duck.card.refit["data_fingerprint"]
    assert pg.metrics["mae"] == pytest.approx(duck.metrics["mae"], rel=1e-9)


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
        plain = train_model(wh, kind="churn", mapping=orders_only, estimator="gbm").metrics
        assert plain["auc"] == pytest.approx(plain["reference_auc"], rel=0.03)
        full = train_model(wh, kind="churn").metrics
        assert full["auc"] > full["reference_auc"]
        params = train_model(wh, kind="btyd").card.params["bgnbd"]
        for name, value in params.items():
            assert value == pytest.approx(TRUTH[name], rel=0.2), name
    finally:
        wh.close()
