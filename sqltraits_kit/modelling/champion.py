"""The champion's whole run: candidates fitted and compared on the validation window, fitted
again and tested beside the baselines, and the champion refit on the latest window.

:func:`train_candidates` is what :func:`~sqltraits_kit.modelling.training.train_model` calls for
churn and LTV models; the order of the stages is the module docstring of
:mod:`~sqltraits_kit.modelling.training`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from sqltraits_kit.errors import DataError
from sqltraits_kit.modelling import baselines as bl
from sqltraits_kit.modelling import selection as sel
from sqltraits_kit.modelling.btyd import BtydPair
from sqltraits_kit.modelling.estimators import CANDIDATES
from sqltraits_kit.modelling.evaluation import (
    btyd_pair,
    churn_evaluation,
    importance,
    ltv_evaluation,
    scatter,
    thread_limit,
)
from sqltraits_kit.modelling.snapshots import Snapshot, fingerprint, stack

__all__ = ["FALLBACK", "iso", "judge", "pair_or_none", "train_candidates"]

#: The champion when there is too little history for a validation window.
FALLBACK = {"churn": "logistic", "ltv": "poisson"}
#: Validation needs this share of the validated profiles to exist a horizon earlier.
MIN_SHARE = 0.25

Progress = Callable[[str, float], None]


def iso(snaps: list[Snapshot]) -> list[str]:
    return [s.cutoff.date().isoformat() for s in snaps if s.rows]


def judge(
    kind: str, frame: pd.DataFrame, pair: BtydPair | None, horizon_days: int, prefix: str = ""
) -> tuple[dict[str, dict], dict[str, pd.DataFrame]]:
    """Each baseline's metrics on ``frame``, and the best one's chart tables (``baseline_*``)."""
    from sqltraits_kit.modelling.metrics import gain_curve, roc_points

    target = "churned" if kind == "churn" else "ltv"
    y = frame[target].to_numpy(dtype=float)
    scores = bl.baseline_scores(kind, frame, horizon_days=horizon_days, btyd=pair)
    metrics = bl.evaluate(kind, y, scores)
    rank = "auc" if kind == "churn" else "gini"
    ranked = [n for n in metrics if metrics[n].get(rank) is not None and n != "zero"]
    tables: dict[str, pd.DataFrame] = {}
    if ranked:
        best = max(ranked, key=lambda n: metrics[n][rank])
        if kind == "churn":
            tables[f"baseline_{prefix}roc"] = roc_points(y, scores[best])
        tables[f"baseline_{prefix}gain"] = gain_curve(y, scores[best])
        for table in tables.values():
            table.attrs["name"] = bl.BASELINES[kind][best]
    return metrics, tables


def pair_or_none(frame: pd.DataFrame, notes: list[str]) -> BtydPair | None:
    try:
        return btyd_pair(frame)
    except (DataError, RuntimeError) as exc:
        notes.append(f"BTYD baseline left out: {exc}")
        return None


def train_candidates(
    kind: str,
    estimator: str,
    snaps: dict[int, Snapshot],
    stages: Any,
    features: list[str],
    *,
    horizon_days: int,
    seed: int,
    report: Progress,
) -> dict[str, Any]:
    notes: list[str] = []
    fit = {"horizon_days": horizon_days, "seed": seed, "threads": thread_limit}
    names = [c for c in CANDIDATES[kind] if c != "blend"] if estimator == "auto" else [estimator]
    target = "churned" if kind == "churn" else "ltv"
    selection: dict[str, Any] | None = None
    champion, members = estimator, []
    validation = snaps.get(stages.validation) if stages.validation is not None else None
    val_snaps = [snaps[j] for j in stages.validation_fit]
    earlier = val_snaps[0].rows if val_snaps else 0
    if estimator == "auto" and (validation is None or earlier < MIN_SHARE * validation.rows):
        champion = FALLBACK[kind]
        notes.append(
            f"too little history for a validation window: {earlier:,} profiles existed a "
            f"horizon before {snaps[1].cutoff.date()}, fewer than a quarter of the "
            f"{snaps[1].rows:,} to validate on; {champion} was chosen without one, and no other "
            "candidate was tried"
        )
        names = [champion]
    elif estimator == "auto":
        report(f"fitting {len(names)} candidates for the validation window", 0.45)
        champion, members, selection, names = _select(
            kind, names, validation, val_snaps, features, notes, fit=fit
        )

    tested_snaps = [snaps[j] for j in stages.tested]
    report(f"fitting {', '.join(names)} on {stack(tested_snaps).shape[0]:,} rows", 0.6)
    fitted, failed = sel.fit_candidates(kind, names, tested_snaps, features, **fit)
    needed = members if champion == "blend" else [champion]
    if any(m not in fitted for m in needed):
        reasons = "; ".join(f"{n}: {failed.get(n, 'not fitted')}" for n in needed)
        raise DataError(f"the {champion} model could not be fitted on the training rows: {reasons}")
    test = snaps[stages.test].frame
    y_test = test[target].to_numpy(dtype=float)
    t_pred, unusable = sel.predict_all(kind, fitted, test)
    failed.update(unusable)
    if any(m not in t_pred for m in needed):
        reasons = "; ".join(f"{n}: {failed[n]}" for n in needed if n in failed)
        raise DataError(f"the {champion} model cannot be tested: {reasons}")
    if selection is not None and failed:
        selection["failed_test"] = failed
    if len(members) >= 2 and all(m in t_pred for m in members):
        t_pred["blend"] = sel.predict(kind, sel.blend(kind, fitted, members), test)
    if champion == "blend":
        tested_model = sel.blend(kind, fitted, members)
        data = pd.concat([fitted[m].data for m in members], axis=1)
        data = data.loc[:, ~data.columns.duplicated()]
        rows = max(fitted[m].rows for m in members)
    else:
        tested_model, data, rows = (
            fitted[champion].model,
            fitted[champion].data,
            fitted[champion].rows,
        )
    if selection is not None:
        for n, p in t_pred.items():
            entry = selection["candidates"].setdefault(n, {})
            entry["test"] = sel.evaluate(kind, y_test, p)

    report(f"evaluating {champion} on {len(test):,} profiles", 0.8)
    evaluate = churn_evaluation if kind == "churn" else ltv_evaluation
    metrics, tables = evaluate(y_test, t_pred[champion])
    metrics.pop("rows", None)
    if kind == "ltv":
        tables["scatter"] = scatter(y_test, t_pred[champion], seed=seed)
    cols = [str(c) for c in tested_model.feature_names_in_]
    with thread_limit(len(test)):
        found = importance(tested_model, kind, test[cols], y_test, seed=seed)
    if found is not None:
        tables["importance"] = found
    pair = pair_or_none(snaps[stages.tested[0]].frame, notes)
    baselines, baseline_tables = judge(kind, test, pair, horizon_days)
    tables.update(baseline_tables)

    model, refit = tested_model, None
    if stages.refit:
        report(f"refitting {champion} on the latest snapshots", 0.88)
        model, refit = _refit(
            kind,
            champion,
            members,
            needed,
            [snaps[j] for j in stages.refit],
            features,
            test,
            notes,
            fit=fit,
            tested_model=tested_model,
        )
    return {
        "estimator": champion,
        "features": cols,
        "model": model,
        "tested_model": tested_model,
        "metrics": metrics,
        "tables": tables,
        "baselines": baselines,
        "training_rows": rows,
        "fingerprint": fingerprint(data),
        "selection": selection,
        "refit": refit,
        "notes": notes,
    }


def _select(
    kind: str,
    names: list[str],
    validation: Snapshot,
    val_snaps: list[Snapshot],
    features: list[str],
    notes: list[str],
    *,
    fit: dict[str, Any],
) -> tuple[str, list[str], dict[str, Any], list[str]]:
    """Fit every candidate before the validation window and choose the champion on it (never
    on the test window); returns the champion, the blend's members, the card's selection record
    and the candidates that could predict."""
    target = "churned" if kind == "churn" else "ltv"
    v_fitted, v_failed = sel.fit_candidates(kind, names, val_snaps, features, **fit)
    y_val = validation.frame[target].to_numpy(dtype=float)
    v_pred, unusable = sel.predict_all(kind, v_fitted, validation.frame)
    v_failed.update(unusable)
    v_metrics = {n: sel.evaluate(kind, y_val, p) for n, p in v_pred.items()}
    members = sel.blend_members(kind, v_metrics)
    if len(members) >= 2:
        v_metrics["blend"] = sel.evaluate(
            kind, y_val, np.mean([v_pred[m] for m in members], axis=0)
        )
    champion, reason = sel.choose(kind, v_metrics, [*names, "blend"])
    val_pair = pair_or_none(stack(val_snaps[:1]), notes)
    selection = {
        "selected_by": sel.SELECT_BY[kind][0],
        "validation_cutoff": validation.cutoff.date().isoformat(),
        "validation_fit_cutoffs": iso(val_snaps),
        "candidates": {n: {"validation": m} for n, m in v_metrics.items()},
        "failed": v_failed,
        "blend_members": members if len(members) >= 2 else [],
        "champion": champion,
        "reason": reason,
        "baselines_validation": judge(kind, validation.frame, val_pair, fit["horizon_days"])[0],
    }
    return champion, members, selection, [n for n in names if n in v_pred]


def _refit(
    kind: str,
    champion: str,
    members: list[str],
    needed: list[str],
    refit_snaps: list[Snapshot],
    features: list[str],
    test: pd.DataFrame,
    notes: list[str],
    *,
    fit: dict[str, Any],
    tested_model: Any,
) -> tuple[Any, dict[str, Any] | None]:
    """The champion fitted again on the latest snapshots after testing, with the facts the card
    keeps; the tested model (and a note) when the refit fails or predicts non-finite values."""
    again, why = sel.fit_candidates(kind, needed, refit_snaps, features, **fit)
    _, broken = sel.predict_all(kind, again, test)  # a sanity check: finite predictions
    why.update(broken)
    if not all(m in again and m not in broken for m in needed):
        notes.append(f"refit failed, the tested model is saved: {why}")
        return tested_model, None
    model = sel.blend(kind, again, members) if champion == "blend" else again[champion].model
    refit_data = pd.concat([again[m].data for m in needed], axis=1)
    refit = {
        "cutoffs": iso(refit_snaps),
        "training_rows": max(again[m].rows for m in needed),
        "data_fingerprint": fingerprint(refit_data.loc[:, ~refit_data.columns.duplicated()]),
    }
    return model, refit
