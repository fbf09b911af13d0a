"""Scoring a trained model's out-of-time predictions: metrics, chart tables, feature importance,
the BTYD pair fitted on RFM columns, and the demo sample's truth-aware reference predictor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sqltraits_kit.errors import DataError
from sqltraits_kit.modelling.btyd import BtydPair
from sqltraits_kit.modelling.metrics import (
    classification_metrics,
    decile_table,
    gain_curve,
    normalized_gini,
    regression_metrics,
    reliability_table,
    roc_points,
)
from sqltraits_kit.modelling.snapshots import RFM

if TYPE_CHECKING:
    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "btyd_pair",
    "btyd_predictions",
    "churn_evaluation",
    "importance",
    "ltv_evaluation",
    "reference_parameters",
    "reference_predictions",
    "scatter",
    "thread_limit",
]

_IMPORTANCE_ROWS = 4_000
_SCATTER_POINTS = 2_000
_SINGLE_THREAD_ROWS = 20_000


def reference_parameters(wh: Warehouse) -> dict[str, float] | None:
    """The sample's true population parameters, or None on a warehouse that is not the sample."""
    if not (wh.has_table("sample_truth") and wh.has_table("sample_parameters")):
        return None
    frame = wh.table("sample_parameters").to_pandas()
    values = dict(zip(frame["name"], frame["value"].astype(float), strict=False))
    needed = ("r", "alpha", "a", "b", "p", "q", "v")
    if any(k not in values for k in needed):
        return None
    return {k: values[k] for k in needed}


def btyd_pair(frame: pd.DataFrame) -> BtydPair:
    """BG/NBD and Gamma-Gamma fitted on a snapshot's RFM columns (``btyd_*``)."""
    from sqltraits_kit.modelling.btyd import BetaGeo, GammaGamma

    buyers = frame[frame["btyd_T"] > 0]
    if buyers.empty:
        raise DataError("no customer has an order before the cutoff: cannot fit BG/NBD")
    bg = BetaGeo().fit(buyers["btyd_frequency"], buyers["btyd_recency"], buyers["btyd_T"])
    repeat = buyers[(buyers["btyd_frequency"] > 0) & (buyers["btyd_monetary"] > 0)]
    if repeat.empty:
        raise DataError("no repeat buyer before the cutoff: cannot fit Gamma-Gamma")
    gg = GammaGamma().fit(repeat["btyd_frequency"], repeat["btyd_monetary"])
    return BtydPair(bg, gg)


def btyd_predictions(pair: BtydPair, frame: pd.DataFrame, horizon_days: int) -> dict[str, Any]:
    rfm = [frame[c].to_numpy(float) for c in RFM]
    return {
        "churn": pair.churn_probability(*rfm[:3], horizon_days=horizon_days),
        "ltv": pair.expected_value(*rfm, horizon_days=horizon_days),
    }


def churn_evaluation(y: np.ndarray, p: np.ndarray, prefix: str = "") -> tuple[dict, dict]:
    metrics = classification_metrics(y, p)
    tables = {
        f"{prefix}roc": roc_points(y, p),
        f"{prefix}reliability": reliability_table(y, p),
        f"{prefix}gain": gain_curve(y, p),
    }
    return metrics, tables


def ltv_evaluation(y: np.ndarray, p: np.ndarray, prefix: str = "") -> tuple[dict, dict]:
    metrics = regression_metrics(y, p)
    tables = {f"{prefix}deciles": decile_table(y, p), f"{prefix}gain": gain_curve(y, p)}
    return metrics, tables


def scatter(y: np.ndarray, p: np.ndarray, *, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    take = rng.choice(y.size, size=min(_SCATTER_POINTS, y.size), replace=False)
    return pd.DataFrame({"predicted": p[take], "actual": y[take]})


def importance(
    model: Any, kind: str, X: pd.DataFrame, y: np.ndarray, *, seed: int
) -> pd.DataFrame | None:
    """Permutation importance on a test subsample: the drop in AUC (churn) or Gini (LTV)."""
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(len(X), size=min(_IMPORTANCE_ROWS, len(X)), replace=False))
    Xs, ys = X.iloc[take], y[take]
    if kind == "churn":
        if not 0 < ys.sum() < ys.size:
            return None

        def scorer(est: Any, X_: pd.DataFrame, y_: np.ndarray) -> float:
            classes = list(est.classes_)
            return roc_auc_score(y_, est.predict_proba(X_)[:, classes.index(1)])
    else:
        if ys.sum() <= 0:
            return None

        def scorer(est: Any, X_: pd.DataFrame, y_: np.ndarray) -> float:
            return normalized_gini(y_, np.clip(est.predict(X_), 0.0, None)) or 0.0

    result = permutation_importance(
        model, Xs, ys, scoring=scorer, n_repeats=2, random_state=seed, n_jobs=1
    )
    frame = pd.DataFrame(
        {
            "feature": list(X.columns),
            "importance": result.importances_mean,
            "std": result.importances_std,
        }
    )
    return frame.sort_values("importance", ascending=False, ignore_index=True)


def thread_limit(rows: int) -> Any:
    """One thread for small data: OpenMP's thread start-up and spinning then cost more than the
    work, many times over on a busy machine; big data keeps every core."""
    from contextlib import nullcontext

    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1) if rows < _SINGLE_THREAD_ROWS else nullcontext()


def reference_predictions(
    truth: dict[str, float], kind: str, test: pd.DataFrame, *, horizon_days: int, seed: int = 0
) -> tuple[dict[str, Any], dict[str, pd.DataFrame], str]:
    """The truth-aware reference's metrics (``reference_*``), chart tables and a note."""
    reference = BtydPair.from_params(
        {
            "bgnbd": {k: truth[k] for k in ("r", "alpha", "a", "b")},
            "gamma_gamma": {k: truth[k] for k in ("p", "q", "v")},
        }
    )
    ref = btyd_predictions(reference, test, horizon_days)
    evaluations = []
    if kind in ("churn", "btyd"):
        evaluations.append(("", churn_evaluation, "churned", ref["churn"]))
    if kind in ("ltv", "btyd"):
        prefix = "ltv_" if kind == "btyd" else ""
        evaluations.append((prefix, ltv_evaluation, "ltv", ref["ltv"]))
    metrics: dict[str, Any] = {}
    tables: dict[str, pd.DataFrame] = {}
    for prefix, evaluate, label, values in evaluations:
        m, t = evaluate(test[label].to_numpy(float), values, prefix=f"reference_{prefix}")
        skip = ("rows", "base_rate", "mean_actual")  # the same data: said once
        metrics.update({f"reference_{k}": v for k, v in m.items() if k not in skip})
        tables.update(t)
    note = "reference: BG/NBD + Gamma-Gamma with the sample's true parameters " + ", ".join(
        f"{k}={v:g}" for k, v in truth.items()
    )
    return metrics, tables, note
