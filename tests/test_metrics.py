from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from sqltraits_kit.errors import DataError
from sqltraits_kit.modelling.metrics import (
    classification_metrics,
    decile_table,
    gain_curve,
    normalized_gini,
    regression_metrics,
    reliability_table,
    roc_points,
    top_decile_lift,
)


def test_normalized_gini_is_one_for_a_perfect_ranking_and_minus_one_reversed():
    y = np.array([0.0, 5.0, 1.0, 20.0, 0.0, 3.0])
    assert normalized_gini(y, y) == pytest.approx(1.0)
    assert normalized_gini(y, 2 * y + 7) == pytest.approx(1.0)  # only the order counts
    assert normalized_gini(y, -y) == pytest.approx(-1.0)


def test_normalized_gini_of_a_constant_prediction_is_zero_whatever_the_row_order():
    y = np.array([0.0, 0.0, 10.0, 0.0, 30.0])
    assert normalized_gini(y, np.zeros(5)) == pytest.approx(0.0)
    assert normalized_gini(y[::-1], np.zeros(5)) == pytest.approx(0.0)


def test_normalized_gini_against_a_hand_computed_value():
    # Ranked by prediction: actuals 3, 1, 0, 2 -> Lorenz 3/6, 4/6, 4/6, 6/6
    y = np.array([2.0, 0.0, 1.0, 3.0])
    p = np.array([0.1, 0.2, 0.3, 0.4])
    g = (3 + 4 + 4 + 6) / 6 / 4 - 5 / 8
    best = (3 + 5 + 6 + 6) / 6 / 4 - 5 / 8
    assert normalized_gini(y, p) == pytest.approx(g / best)


def test_gini_is_undefined_without_any_value():
    assert normalized_gini(np.zeros(4), np.arange(4.0)) is None


def test_top_decile_lift():
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0] * 2, dtype=float)  # base rate 0.2
    p = np.linspace(1, 0, 20)  # the two top-scored rows are 1, 1
    assert top_decile_lift(y, p) == pytest.approx(1.0 / 0.2)
    assert top_decile_lift(np.zeros(10), p[:10]) is None


def test_tied_scores_share_their_outcome():
    # All tied: the top decile holds the average outcome, so the lift is exactly 1.
    y = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 0], dtype=float)
    assert top_decile_lift(y, np.full(10, 0.5)) == pytest.approx(1.0)


def test_classification_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=500)
    y = (rng.uniform(size=500) < p).astype(float)
    m = classification_metrics(y, p)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p))
    assert m["brier"] == pytest.approx(brier_score_loss(y, p))
    assert m["base_rate"] == pytest.approx(y.mean())
    assert m["rows"] == 500
    assert m["top_decile_lift"] > 1.2
    json.dumps(m, allow_nan=False)


def test_one_class_gives_none_not_nan():
    m = classification_metrics(np.ones(5), np.linspace(0, 1, 5))
    assert m["auc"] is None and m["pr_auc"] is None
    json.dumps(m, allow_nan=False)


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 1, 2], [0.1, 0.2, 0.3], "0 or 1 (row 2)"),
        ([0, 1, 1], [0.1, 1.2, 0.3], "[0, 1] (row 1)"),
        ([0, 1, 1], [0.1, float("nan"), 0.3], "first at row 1"),
        ([0, 1], [0.1, 0.2, 0.3], "2 actual values but 3 predictions"),
        ([], [], "no rows"),
    ],
)
def test_bad_classification_input_is_named(y, p, message):
    with pytest.raises(DataError, match=re.escape(message)):
        classification_metrics(y, p)


def test_regression_metrics():
    y = np.array([0.0, 10.0, 20.0, 30.0])
    p = np.array([5.0, 5.0, 25.0, 35.0])
    m = regression_metrics(y, p)
    assert m["mae"] == pytest.approx(5.0)
    assert m["total_pct_error"] == pytest.approx(100 * (70 - 60) / 60)
    assert m["spearman"] == pytest.approx(np.corrcoef([1, 2, 3, 4], [1.5, 1.5, 3, 4])[0, 1])
    assert m["gini"] == pytest.approx(normalized_gini(y, p))
    assert m["mean_actual"] == pytest.approx(15.0) and m["mean_predicted"] == pytest.approx(17.5)
    json.dumps(m, allow_nan=False)


def test_regression_metrics_without_revenue_are_none():
    m = regression_metrics(np.zeros(3), np.array([1.0, 2.0, 3.0]))
    assert m["total_pct_error"] is None and m["gini"] is None and m["spearman"] is None
    assert m["mae"] == pytest.approx(2.0)


def test_decile_table_orders_by_prediction():
    y = np.arange(100, dtype=float)
    table = decile_table(y, y + 1)
    assert list(table["decile"]) == list(range(1, 11))
    assert table["rows"].sum() == 100
    assert table["mean_actual"].is_monotonic_decreasing
    assert table["mean_actual"].iloc[0] == pytest.approx(np.arange(90, 100).mean())
    assert table["mean_predicted"].iloc[-1] == pytest.approx(np.arange(1, 11).mean())


def test_reliability_table_bins_and_rates():
    p = np.array([0.05, 0.05, 0.95, 0.95, 0.95, 1.0])
    y = np.array([0, 0, 1, 1, 0, 1], dtype=float)
    table = reliability_table(y, p)
    assert list(table["rows"]) == [2, 4]
    assert list(table["bin_low"]) == [0.0, 0.9]
    assert table["observed_rate"].tolist() == pytest.approx([0.0, 0.75])
    assert table["mean_predicted"].tolist() == pytest.approx([0.05, 0.9625])


def test_gain_and_roc_curves():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0], dtype=float)
    p = np.array([0.9, 0.1, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    gain = gain_curve(y, p, points=11)
    assert gain["fraction_captured"].iloc[2] == pytest.approx(1.0)  # top 20% holds both
    assert gain["fraction_captured"].iloc[-1] == pytest.approx(1.0)
    assert gain["lift"].iloc[1] == pytest.approx(5.0)
    assert math.isnan(gain["lift"].iloc[0])
    roc = roc_points(y, p)
    assert len(roc) == 101 and roc["tpr"].iloc[-1] == pytest.approx(1.0)
    assert roc["tpr"].iloc[0] == pytest.approx(1.0)  # both positives ranked above all negatives
