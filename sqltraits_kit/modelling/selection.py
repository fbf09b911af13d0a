"""Fitting candidates on snapshots, scoring them, and choosing a champion on a validation window.

The champion is chosen on a window that is not the test window: candidates are fitted on the
snapshots before the validation cutoff and compared on the validation cutoff's outcomes; only
then are they fitted again (one window later) and tested. So the test figures on the card are
out of time for the choice as well as for the fit.

The rule: churn by ROC AUC (higher), LTV by mean absolute error (lower); a tie goes to the
candidate listed first (simpler first). The blend's members are the best of each family by the
same rule, on the same validation window.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sqltraits_kit import formatting as fmt
from sqltraits_kit.errors import DataError
from sqltraits_kit.modelling.estimators import BTYD_VARIANTS, FAMILIES, Blend, make_estimator
from sqltraits_kit.modelling.metrics import classification_metrics, regression_metrics
from sqltraits_kit.modelling.snapshots import Snapshot, stack

__all__ = [
    "SELECT_BY",
    "Fitted",
    "blend",
    "blend_members",
    "choose",
    "evaluate",
    "fit_candidates",
    "predict",
    "predict_all",
]

#: The validation metric a champion is chosen by, and which way is better.
SELECT_BY: dict[str, tuple[str, str]] = {"churn": ("auc", "higher"), "ltv": ("mae", "lower")}
_SINGLE_SNAPSHOT = BTYD_VARIANTS  # one customer once: BTYD fits its whole history


@dataclass
class Fitted:
    """A candidate fitted on some snapshots."""

    name: str
    model: Any
    rows: int
    data: pd.DataFrame  # the rows it was fitted on (for the fingerprint), feature columns only


def predict(kind: str, model: Any, frame: pd.DataFrame) -> np.ndarray:
    """Class-1 probability (churn) or the prediction clipped at 0 (LTV), on the model's columns."""
    cols = [str(c) for c in model.feature_names_in_]
    if kind == "churn":
        classes = list(model.classes_)
        return np.asarray(model.predict_proba(frame[cols])[:, classes.index(1)], dtype=float)
    return np.clip(np.asarray(model.predict(frame[cols]), dtype=float), 0.0, None)


def predict_all(
    kind: str, fitted: Mapping[str, Any], frame: pd.DataFrame
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Each fitted model's predictions on ``frame``; a model whose predictions are not all
    finite (a BTYD fit on too few buyers can give NaN) is left out with the reason."""
    out: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}
    for name, f in fitted.items():
        model = f.model if isinstance(f, Fitted) else f
        p = predict(kind, model, frame)
        bad = int((~np.isfinite(p)).sum())
        if bad:
            failed[name] = f"{bad:,} of {p.size:,} predictions are NaN or infinite"
        else:
            out[name] = p
    return out, failed


def evaluate(kind: str, actual: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    metrics = (classification_metrics if kind == "churn" else regression_metrics)(actual, predicted)
    metrics.pop("rows", None)
    return metrics


def fit_candidates(
    kind: str,
    names: Sequence[str],
    snaps: Sequence[Snapshot],
    features: Sequence[str],
    *,
    horizon_days: int,
    seed: int,
    threads: Callable[[int], Any],
) -> tuple[dict[str, Fitted], dict[str, str]]:
    """Each named candidate fitted on ``snaps`` (latest first); the ones that cannot be fitted
    on these data come back in the second dict with the reason."""
    target = "churned" if kind == "churn" else "ltv"
    stacked = stack(snaps)
    latest = next((s.frame for s in snaps if s.rows), stacked)
    fitted: dict[str, Fitted] = {}
    failed: dict[str, str] = {}
    for name in names:
        rows = latest if name in _SINGLE_SNAPSHOT else stacked
        y = rows[target].to_numpy(dtype=float)
        if kind == "churn" and name not in _SINGLE_SNAPSHOT and not 0 < y.sum() < y.size:
            failed[name] = f"every training profile has churned={int(y[0])}"
            continue
        model = make_estimator(kind, name, seed=seed, horizon_days=horizon_days)
        # BTYD reads its own order columns, whichever features the others are given.
        X = rows if name in _SINGLE_SNAPSHOT else rows[list(features)]
        try:
            with threads(len(rows)):
                model.fit(X, y.astype(int) if kind == "churn" else y)
        except DataError as exc:
            failed[name] = str(exc)
            continue
        cols = [str(c) for c in model.feature_names_in_]
        fitted[name] = Fitted(name, model, len(rows), rows[[*cols, "churned", "ltv"]])
    return fitted, failed


def _better(direction: str, a: float | None, b: float | None) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return False
    if b is None:
        return True
    return a > b if direction == "higher" else a < b


def _best(kind: str, metrics: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> str | None:
    metric, direction = SELECT_BY[kind]
    best: str | None = None
    for name in names:
        if name not in metrics:
            continue
        if best is None or _better(direction, metrics[name].get(metric), metrics[best].get(metric)):
            best = name
    return best


def blend_members(kind: str, metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The best candidate of each family on validation (families with no fitted member skipped)."""
    out = []
    for family in FAMILIES[kind]:
        best = _best(kind, metrics, family)
        if best is not None:
            out.append(best)
    return out


def choose(
    kind: str, metrics: Mapping[str, Mapping[str, Any]], order: Sequence[str]
) -> tuple[str, str]:
    """The champion and a sentence saying why it won."""
    metric, direction = SELECT_BY[kind]
    champion = _best(kind, metrics, order)
    if champion is None:
        raise DataError("no candidate could be fitted on the validation snapshots")
    value = metrics[champion].get(metric)
    others = [
        (n, metrics[n].get(metric))
        for n in order
        if n in metrics and n != champion and metrics[n].get(metric) is not None
    ]
    others.sort(key=lambda item: -item[1] if direction == "higher" else item[1])
    word = "highest" if direction == "higher" else "lowest"
    reason = f"{word} validation {fmt.metric_label(metric)}: {fmt.metric_value(metric, value)}"
    if others:
        runner, runner_value = others[0]
        reason += f", ahead of {runner} ({fmt.metric_value(metric, runner_value)})"
    return champion, reason


def blend(kind: str, fitted: Mapping[str, Fitted], members: Sequence[str]) -> Blend:
    return Blend.of(kind, {m: fitted[m].model for m in members})
