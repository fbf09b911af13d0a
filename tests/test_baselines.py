"""The naive rules a model is judged against, and the comparison that warns when it loses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from sqltraits_kit.modelling import baselines as bl


def _frame(n: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    orders = rng.poisson(2, n)
    tenure = rng.uniform(10, 400, n)
    return pd.DataFrame(
        {
            "tenure_days": tenure,
            "orders_count": orders,
            "days_since_last_order": tenure * rng.uniform(0, 1, n),
            "revenue_sum": orders * rng.gamma(3, 20, n),
        }
    )


def test_churn_rules_are_recency_and_recency_over_orders():
    f = _frame()
    scores = bl.baseline_scores("churn", f, horizon_days=90)
    assert set(scores) == {"recency", "recency_frequency"}  # no BTYD without a fitted pair
    np.testing.assert_array_equal(scores["recency"], f["days_since_last_order"])
    np.testing.assert_allclose(
        scores["recency_frequency"], f["days_since_last_order"] / (f["orders_count"] + 1)
    )


def test_ltv_rules_are_zero_and_the_past_rate_over_at_least_a_horizon():
    f = _frame()
    scores = bl.baseline_scores("ltv", f, horizon_days=90)
    assert set(scores) == {"zero", "past_rate"} and not scores["zero"].any()
    age = np.maximum(f["tenure_days"], 90)
    np.testing.assert_allclose(scores["past_rate"], f["revenue_sum"] / age * 90)


def test_a_rule_is_judged_by_its_ranking_and_has_no_brier_score():
    f = _frame()
    y = f["days_since_last_order"] + np.random.default_rng(1).normal(0, 80, len(f)) > 120
    y = y.astype(float).to_numpy()
    got = bl.evaluate("churn", y, bl.baseline_scores("churn", f, horizon_days=90))
    assert got["recency"]["auc"] == pytest.approx(roc_auc_score(y, f["days_since_last_order"]))
    assert got["recency"]["pr_auc"] == pytest.approx(
        average_precision_score(y, f["days_since_last_order"])
    )
    assert got["recency"]["brier"] is None


def test_predicting_zero_has_the_mean_as_its_error():
    y = np.array([0.0, 0.0, 10.0, 30.0])
    got = bl.evaluate("ltv", y, {"zero": np.zeros(4)})["zero"]
    assert got["mae"] == 10.0 and got["total_pct_error"] == -100.0 and got["gini"] == 0.0


def test_compare_picks_the_best_baseline_per_metric_and_warns_where_the_model_loses():
    metrics = {"mae": 12.0, "gini": 0.6, "spearman": None, "total_pct_error": -8.0}
    baselines = {
        "zero": {"mae": 10.0, "gini": 0.0, "spearman": None, "total_pct_error": -100.0},
        "past_rate": {"mae": 30.0, "gini": 0.5, "spearman": 0.3, "total_pct_error": 150.0},
        "btyd": {"mae": 13.0, "gini": 0.65, "spearman": 0.35, "total_pct_error": 9.0},
    }
    rows, warnings = bl.compare("ltv", metrics, baselines)
    by = {r["metric"]: r for r in rows}
    assert set(by) == {"mae", "gini", "total_pct_error"}  # the model has no spearman
    assert (by["mae"]["best_baseline"], by["mae"]["beats"]) == ("zero", False)
    assert (by["gini"]["best_baseline"], by["gini"]["beats"]) == ("btyd", False)
    # the total error is judged by its size, whatever its sign
    assert (by["total_pct_error"]["best_baseline"], by["total_pct_error"]["beats"]) == (
        "btyd",
        True,
    )
    assert warnings == [
        "The model does not beat the baseline 'predict 0' on MAE: 12 vs 10.",
        "The model does not beat the baseline 'BG/NBD + Gamma-Gamma' on normalised Gini: "
        "0.6 vs 0.65.",
    ]


def test_a_tie_is_not_a_win():
    rows, warnings = bl.compare("churn", {"auc": 0.8}, {"recency": {"auc": 0.8}})
    assert rows[0]["beats"] is False and len(warnings) == 1
    rows, warnings = bl.compare("churn", {"brier": 0.1}, {"btyd": {"brier": 0.2}})
    assert rows[0]["beats"] is True and warnings == []
