"""The obvious rules a model must beat, scored on the same out-of-time rows as the model.

A data scientist compares any model with the naive rule first; the model card does it for them.

Churn (a higher score means more likely to churn):

* ``recency`` — days since the last order (no order: the profile's age);
* ``recency_frequency`` — days since the last order ÷ (orders + 1): long silence churns, many
  orders hold a customer;
* ``btyd`` — BG/NBD's probability of no order in the horizon, fitted on the order history
  before the training cutoff (the kit's ``btyd`` model).

LTV:

* ``zero`` — predict 0 for everyone (in a horizon most customers buy nothing);
* ``past_rate`` — the customer's spend so far per day of age, times the horizon (age counted
  as at least one horizon, so a first order yesterday is not a daily habit);
* ``btyd`` — BG/NBD expected orders times Gamma-Gamma expected spend.

The two rules give a ranking, not a probability: their Brier score is left out (None).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from sqltraits_kit import formatting as fmt
from sqltraits_kit.modelling.metrics import classification_metrics, regression_metrics

__all__ = [
    "BASELINES",
    "HEADLINE",
    "baseline_scores",
    "compare",
    "evaluate",
]

#: Baseline name -> what it is, per kind.
BASELINES: dict[str, dict[str, str]] = {
    "churn": {
        "recency": "days since last order",
        "recency_frequency": "days since last order ÷ (orders + 1)",
        "btyd": "BG/NBD P(no order in the horizon)",
    },
    "ltv": {
        "zero": "predict 0",
        "past_rate": "past spend rate × horizon",
        "btyd": "BG/NBD + Gamma-Gamma",
    },
}
#: The metrics a model is judged on against the baselines: name -> "higher" | "lower" |
#: "closer to 0" (the total error).
HEADLINE: dict[str, dict[str, str]] = {
    "churn": {"auc": "higher", "pr_auc": "higher", "top_decile_lift": "higher", "brier": "lower"},
    "ltv": {"mae": "lower", "gini": "higher", "spearman": "higher", "total_pct_error": "closer"},
}


def baseline_scores(
    kind: str,
    frame: pd.DataFrame,
    *,
    horizon_days: int,
    btyd: Any = None,
) -> dict[str, np.ndarray]:
    """Each baseline's prediction for the rows of ``frame`` (feature and RFM columns).

    ``btyd`` is a fitted :class:`~sqltraits_kit.modelling.btyd.BtydPair`; without it (no order
    history to fit on) the BTYD baseline is left out.
    """
    recency = frame["days_since_last_order"].to_numpy(dtype=float)
    orders = frame["orders_count"].to_numpy(dtype=float)
    out: dict[str, np.ndarray] = {}
    if kind == "churn":
        out["recency"] = recency
        out["recency_frequency"] = recency / (orders + 1.0)
    else:
        age = np.maximum(frame["tenure_days"].to_numpy(dtype=float), float(horizon_days))
        out["zero"] = np.zeros(len(frame))
        out["past_rate"] = frame["revenue_sum"].to_numpy(dtype=float) / age * horizon_days
    if btyd is not None:
        rfm = [frame[c].to_numpy(dtype=float) for c in ("btyd_frequency", "btyd_recency", "btyd_T")]
        if kind == "churn":
            out["btyd"] = btyd.churn_probability(*rfm, horizon_days=horizon_days)
        else:
            money = frame["btyd_monetary"].to_numpy(dtype=float)
            out["btyd"] = btyd.expected_value(*rfm, money, horizon_days=horizon_days)
    return out


def evaluate(kind: str, actual: np.ndarray, scores: Mapping[str, np.ndarray]) -> dict[str, dict]:
    """Each baseline's metrics on ``actual`` (the same metrics as the model's)."""
    out: dict[str, dict] = {}
    for name, values in scores.items():
        if kind == "churn":
            probability = name == "btyd"
            # A rule's score is a ranking: mapped to (0, 1] by rank so the rank metrics apply.
            p = values if probability else rankdata(values) / len(values)
            m = classification_metrics(actual, p)
            if not probability:
                m["brier"] = None
        else:
            m = regression_metrics(actual, values)
        out[name] = {k: v for k, v in m.items() if k not in ("rows", "base_rate", "mean_actual")}
    return out


def _better(direction: str, a: float, b: float) -> bool:
    if direction == "higher":
        return a > b
    if direction == "lower":
        return a < b
    return abs(a) < abs(b)


def compare(
    kind: str, metrics: Mapping[str, Any], baselines: Mapping[str, Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Per headline metric: the model, the best baseline (and which), and whether the model
    beats it; plus a plain warning for each metric where it does not."""
    kind = "churn" if kind == "churn" else "ltv"
    labels = BASELINES[kind]
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    for metric, direction in HEADLINE[kind].items():
        model = metrics.get(metric)
        candidates = [
            (name, values.get(metric))
            for name, values in baselines.items()
            if values.get(metric) is not None
        ]
        if model is None or not candidates:
            continue
        best_name, best = candidates[0]
        for name, value in candidates[1:]:
            if _better(direction, value, best):
                best_name, best = name, value
        beats = _better(direction, model, best)
        rows.append(
            {
                "metric": metric,
                "model": model,
                "best_baseline": best_name,
                "baseline": best,
                "beats": beats,
            }
        )
        if not beats:
            what = labels.get(best_name, best_name)
            warnings.append(
                f"The model does not beat the baseline '{what}' on {fmt.metric_label(metric)}: "
                f"{fmt.metric_value(metric, model)} vs {fmt.metric_value(metric, best)}."
            )
    return rows, warnings
