"""Evaluation metrics and the small tables behind the charts, for churn and LTV predictions.

Every ranking metric treats tied predictions fairly: inside a group of equal scores the actual
values are averaged, which is the expectation over every order the tie could be broken in. BTYD
predictions tie a lot (all customers with the same history get the same score), and without this
the result would depend on row order.

Metrics that are undefined for the data (AUC with one class, Gini with no revenue) are ``None``,
so a metrics dict is always valid JSON.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sqltraits_kit.errors import DataError

__all__ = [
    "classification_metrics",
    "decile_table",
    "gain_curve",
    "normalized_gini",
    "regression_metrics",
    "reliability_table",
    "roc_points",
    "top_decile_lift",
]


def _arrays(actual: Any, predicted: Any, *, what: str) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(actual, dtype=float).ravel()
    p = np.asarray(predicted, dtype=float).ravel()
    if y.shape != p.shape:
        raise DataError(f"{what}: {y.size} actual values but {p.size} predictions")
    if y.size == 0:
        raise DataError(f"{what}: no rows to evaluate")
    for name, arr in (("actual", y), ("predicted", p)):
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise DataError(
                f"{what}: {bad.size} {name} values are missing or infinite (first at row {bad[0]})"
            )
    return y, p


def _number(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _ranked(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Actuals ordered by prediction, highest first, each tie group replaced by its mean."""
    order = np.argsort(-p, kind="stable")
    ys, ps = y[order], p[order]
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])
    sums = np.add.reduceat(ys, starts)
    sizes = np.diff(np.r_[starts, ys.size])
    return np.repeat(sums / sizes, sizes)


def _gini(y: np.ndarray, p: np.ndarray) -> float:
    total = y.sum()
    if total == 0:
        return math.nan
    n = y.size
    cum = np.cumsum(_ranked(y, p)) / total
    return cum.sum() / n - (n + 1) / (2 * n)


def normalized_gini(actual: Any, predicted: Any) -> float | None:
    """Gini of the predictions over the Gini of a perfect ranking: 1 perfect, 0 random."""
    y, p = _arrays(actual, predicted, what="normalized_gini")
    best = _gini(y, y)
    if not math.isfinite(best) or best == 0:
        return None
    return _number(_gini(y, p) / best)


def top_decile_lift(actual: Any, predicted: Any, *, fraction: float = 0.1) -> float | None:
    """The positive rate among the top ``fraction`` by score over the overall positive rate."""
    y, p = _arrays(actual, predicted, what="top_decile_lift")
    base = y.mean()
    if base == 0:
        return None
    k = max(1, math.ceil(fraction * y.size))
    return _number(_ranked(y, p)[:k].mean() / base)


def classification_metrics(actual: Any, probability: Any) -> dict[str, float | None]:
    """ROC AUC, PR AUC (average precision), Brier score, top-decile lift, base rate, rows."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    y, p = _arrays(actual, probability, what="classification metrics")
    if not np.isin(y, (0.0, 1.0)).all():
        bad = int(np.flatnonzero(~np.isin(y, (0.0, 1.0)))[0])
        raise DataError(f"classification metrics: actual values must be 0 or 1 (row {bad})")
    if ((p < 0) | (p > 1)).any():
        bad = int(np.flatnonzero((p < 0) | (p > 1))[0])
        raise DataError(f"classification metrics: probabilities must be in [0, 1] (row {bad})")
    both = 0 < y.sum() < y.size
    return {
        "auc": _number(roc_auc_score(y, p)) if both else None,
        "pr_auc": _number(average_precision_score(y, p)) if both else None,
        "brier": _number(brier_score_loss(y, p)),
        "top_decile_lift": top_decile_lift(y, p),
        "base_rate": _number(y.mean()),
        "rows": int(y.size),
    }


def regression_metrics(actual: Any, predicted: Any) -> dict[str, float | None]:
    """MAE, Spearman, normalised Gini and the total % error of the summed predictions."""
    from scipy.stats import spearmanr

    y, p = _arrays(actual, predicted, what="regression metrics")
    total = y.sum()
    spearman = None
    if np.ptp(y) > 0 and np.ptp(p) > 0:
        spearman = _number(spearmanr(y, p).statistic)
    return {
        "mae": _number(np.abs(y - p).mean()),
        "spearman": spearman,
        "gini": normalized_gini(y, p),
        "total_pct_error": _number(100.0 * (p.sum() - total) / total) if total else None,
        "mean_actual": _number(y.mean()),
        "mean_predicted": _number(p.mean()),
        "rows": int(y.size),
    }


def reliability_table(actual: Any, probability: Any, *, bins: int = 10) -> pd.DataFrame:
    """Mean predicted probability vs observed rate per equal-width bin (empty bins left out)."""
    y, p = _arrays(actual, probability, what="reliability table")
    idx = np.minimum((p * bins).astype(int), bins - 1)
    frame = pd.DataFrame({"bin": idx, "y": y, "p": p})
    out = frame.groupby("bin").agg(
        mean_predicted=("p", "mean"), observed_rate=("y", "mean"), rows=("y", "size")
    )
    out = out.reset_index()
    out.insert(1, "bin_low", out["bin"] / bins)
    out.insert(2, "bin_high", (out["bin"] + 1) / bins)
    return out.drop(columns="bin")


def roc_points(actual: Any, probability: Any, *, points: int = 101) -> pd.DataFrame:
    """The ROC curve on a fixed false-positive-rate grid (small enough to chart and store)."""
    from sklearn.metrics import roc_curve

    y, p = _arrays(actual, probability, what="ROC curve")
    grid = np.linspace(0.0, 1.0, points)
    if not 0 < y.sum() < y.size:
        return pd.DataFrame({"fpr": grid, "tpr": np.full(points, np.nan)})
    fpr, tpr, _ = roc_curve(y, p)
    return pd.DataFrame({"fpr": grid, "tpr": np.interp(grid, fpr, tpr)})


def gain_curve(actual: Any, predicted: Any, *, points: int = 101) -> pd.DataFrame:
    """Cumulative gain and lift: the share of all positives (or revenue) in the top x% by score."""
    y, p = _arrays(actual, predicted, what="gain curve")
    total = y.sum()
    cum = np.r_[0.0, np.cumsum(_ranked(y, p))]
    share = np.linspace(0.0, 1.0, points)
    pos = share * y.size
    captured = np.interp(pos, np.arange(y.size + 1), cum) / total if total else share * np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = np.where(share > 0, captured / share, np.nan)
    return pd.DataFrame({"fraction_targeted": share, "fraction_captured": captured, "lift": lift})


def decile_table(actual: Any, predicted: Any, *, groups: int = 10) -> pd.DataFrame:
    """Rows split into equal groups by prediction (1 = highest): mean predicted vs mean actual."""
    y, p = _arrays(actual, predicted, what="decile table")
    order = np.argsort(-p, kind="stable")
    ranked_y = _ranked(y, p)
    parts = np.array_split(np.arange(y.size), min(groups, y.size))
    rows = [
        {
            "decile": i + 1,
            "mean_predicted": float(p[order][part].mean()),
            "mean_actual": float(ranked_y[part].mean()),
            "rows": int(part.size),
        }
        for i, part in enumerate(parts)
    ]
    return pd.DataFrame(rows)
