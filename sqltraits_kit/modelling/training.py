"""Train churn and LTV models on warehouse tables and judge them out of time, beside baselines.

The protocol never splits at random across time. With a horizon ``H`` and a training cutoff
``c`` (default: the latest event's day minus ``2H``), the test cutoff is ``t = c + H`` and
snapshots are taken every ``H`` days back from it (:mod:`~sqltraits_kit.modelling.snapshots`):

* **validation** (``estimator="auto"``): every candidate is fitted on the snapshots at
  ``c - H, c - 2H, ...`` and compared on the outcomes after ``c``; the champion is chosen there
  (:mod:`~sqltraits_kit.modelling.selection`), never on the test window;
* **test**: the candidates are fitted on the snapshots at ``c, c - H, ...`` (labels end where the
  test history ends) and scored on the outcomes in ``[t, t + H)``, beside the baselines
  (:mod:`~sqltraits_kit.modelling.baselines`) scored on the same rows;
* **refit**: the champion is fitted once more on the snapshots at ``t, t - H, ...`` (the latest
  complete outcomes) and that model is the one saved; the card keeps the tested model's facts
  and the refit's.

Stacking snapshots puts every profile in training at several ages (``tenure_days`` carries it),
so a model trained on younger customers than it scores is the exception, not the rule.

Features and labels are computed in the warehouse; only the rows used (at most ``max_rows``
profiles per snapshot, every k-th by id) are pulled into pandas. On the demo sample (it holds
``sample_truth`` and ``sample_parameters``) every metric also comes with a *reference predictor*:
BG/NBD and Gamma-Gamma with the sample's true parameters, the best one can do from orders alone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sqltraits_kit.errors import ConfigError, DataError
from sqltraits_kit.modelling import baselines as bl
from sqltraits_kit.modelling import selection as sel
from sqltraits_kit.modelling.btyd import BtydPair
from sqltraits_kit.modelling.estimators import CANDIDATES, make_estimator
from sqltraits_kit.modelling.evaluation import (
    btyd_pair,
    btyd_predictions,
    churn_evaluation,
    importance,
    ltv_evaluation,
    reference_parameters,
    reference_predictions,
    scatter,
    thread_limit,
)
from sqltraits_kit.modelling.features import (
    CHURN_ON,
    DEFAULT_WINDOWS,
    TableMapping,
    data_end,
    feature_columns,
    to_instant,
)
from sqltraits_kit.modelling.snapshots import RFM, Snapshot, fingerprint, plan, pull, stack

if TYPE_CHECKING:
    from sqltraits_kit.modelling.registry import ModelCard, Registry
    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "ESTIMATORS",
    "BtydPair",
    "TrainResult",
    "default_cutoff",
    "make_estimator",
    "reference_parameters",
    "save_result",
    "train_model",
]

#: The estimators each kind of model can use; the first is the default. ``auto`` trains every
#: candidate and keeps the champion; ``btyd`` is the BG/NBD + Gamma-Gamma pair as its own model.
ESTIMATORS: dict[str, tuple[str, ...]] = {
    "churn": ("auto", *(c for c in CANDIDATES["churn"] if c != "blend"), "btyd"),
    "ltv": ("auto", *(c for c in CANDIDATES["ltv"] if c != "blend"), "btyd"),
    "btyd": ("btyd",),
}
#: The champion when there is too little history for a validation window.
FALLBACK = {"churn": "logistic", "ltv": "poisson"}
MAX_ROWS = 250_000
SNAPSHOTS = 3

Progress = Callable[[str, float], None]


@dataclass
class TrainResult:
    """A trained model, its card and the small tables the charts draw (no raw rows).

    ``model`` is the model saved (the refit one, unless ``refit=False``); ``tested_model`` the
    one the test figures belong to.
    """

    card: ModelCard
    model: Any
    metrics: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    saved: bool = False
    seconds: float = 0.0
    tested_model: Any = None


def _day(when: dt.datetime) -> dt.datetime:
    return dt.datetime(when.year, when.month, when.day)


def default_cutoff(
    wh: Warehouse, mapping: TableMapping | None = None, *, horizon_days: int = 90
) -> dt.date:
    """The latest training cutoff whose out-of-time test labels are complete."""
    end = _day(data_end(wh, mapping or TableMapping()))
    return (end - dt.timedelta(days=2 * int(horizon_days))).date()


def _check(kind: str, estimator: str | None, churn_on: str, horizon_days: Any, max_rows: Any):
    if kind not in ESTIMATORS:
        raise ConfigError(f"kind must be one of {', '.join(ESTIMATORS)}, got {kind!r}")
    estimator = estimator or ESTIMATORS[kind][0]
    if estimator not in ESTIMATORS[kind]:
        raise ConfigError(
            f"no estimator {estimator!r} for {kind!r} models "
            f"(choose from: {', '.join(ESTIMATORS[kind])})"
        )
    if churn_on not in CHURN_ON:
        raise ConfigError(f"churn_on must be one of {CHURN_ON}, got {churn_on!r}")
    if int(horizon_days) != horizon_days or horizon_days < 1:
        raise ConfigError(f"horizon_days must be a whole number >= 1, got {horizon_days!r}")
    if max_rows is not None and max_rows < 100:
        raise ConfigError(f"max_rows must be at least 100, got {max_rows}")
    return estimator


def _iso(snaps: Sequence[Snapshot]) -> list[str]:
    return [s.cutoff.date().isoformat() for s in snaps if s.rows]


def train_model(
    wh: Warehouse,
    *,
    kind: str,
    mapping: TableMapping | None = None,
    cutoff: dt.date | dt.datetime | str | None = None,
    horizon_days: int = 90,
    estimator: str | None = None,
    name: str | None = None,
    registry: Registry | None = None,
    progress: Progress | None = None,
    windows: Sequence[int] = DEFAULT_WINDOWS,
    churn_on: str = "orders",
    max_rows: int | None = MAX_ROWS,
    snapshots: int = SNAPSHOTS,
    refit: bool = True,
    seed: int = 0,
) -> TrainResult:
    """Train a churn or LTV model on ``wh``, test it out of time beside baselines, save it if asked.

    ``kind`` is ``churn`` or ``ltv`` (``btyd``, or ``estimator="btyd"``, fits the BG/NBD +
    Gamma-Gamma pair, scored on both). ``estimator`` ``auto`` (the default) trains every
    candidate and keeps the one that does best on a validation window before the test window.
    ``snapshots`` cutoffs a horizon apart are stacked for training; with ``refit`` the model
    saved is fitted again on the latest complete window after testing. With ``registry`` the
    model is saved as the next version of ``name`` (default: the kind). ``progress(message,
    fraction)`` hears about each step.
    """
    started = time.perf_counter()
    report = progress or (lambda _msg, _frac: None)
    estimator = _check(kind, estimator, churn_on, horizon_days, max_rows)
    if int(snapshots) != snapshots or snapshots < 1:
        raise ConfigError(f"snapshots must be a whole number >= 1, got {snapshots!r}")
    name = name or kind  # "ltv" with the BTYD pair is still the LTV model by name
    kind = "btyd" if estimator == "btyd" else kind
    horizon_days, snapshots = int(horizon_days), int(snapshots)
    mapping = mapping or TableMapping()
    windows = sorted({int(w) for w in windows})

    report("checking the table mapping", 0.0)
    mapping.validate(wh)
    end = data_end(wh, mapping)
    train_cutoff = _day(end) - dt.timedelta(days=2 * horizon_days)
    if cutoff is not None:
        train_cutoff = _day(to_instant(cutoff))
    test_cutoff = train_cutoff + dt.timedelta(days=horizon_days)
    test_end = test_cutoff + dt.timedelta(days=horizon_days)
    if test_end > end:
        latest = (_day(end) - dt.timedelta(days=2 * horizon_days)).date()
        raise ConfigError(
            f"cutoff {train_cutoff.date()} is too late for a {horizon_days}-day horizon: the "
            f"out-of-time test needs labels until {test_end.date()}, but the data end at "
            f"{end:%Y-%m-%d %H:%M}. Choose a cutoff on or before {latest}."
        )

    auto = estimator == "auto"
    stages = plan(1 if kind == "btyd" else snapshots, validate=auto, refit=refit)
    needed = sorted({stages.test, *stages.tested, *stages.validation_fit, *stages.refit})
    if stages.validation is not None:
        needed = sorted({*needed, stages.validation})
    snaps: dict[int, Snapshot] = {}
    notes: list[str] = []
    for i, j in enumerate(needed):
        when = test_cutoff - dt.timedelta(days=j * horizon_days)
        report(f"building rows at {when.date()} in the warehouse", 0.02 + 0.4 * i / len(needed))
        snaps[j] = pull(
            wh,
            mapping,
            cutoff=when,
            horizon_days=horizon_days,
            windows=windows,
            churn_on=churn_on,
            max_rows=max_rows,
        )
        if snaps[j].step > 1:
            notes.append(f"rows at {when.date()}: every {snaps[j].step}th profile by id")
    tested_snaps = [snaps[j] for j in stages.tested]
    test = snaps[stages.test]
    if not any(s.rows for s in tested_snaps):
        raise DataError(
            f"no profile in {mapping.profiles_table!r} was created before the cutoff "
            f"{train_cutoff.date()}: choose a later cutoff"
        )
    if test.rows == 0:
        raise DataError(f"no profile exists before the test cutoff {test_cutoff.date()}")
    common = {"horizon_days": horizon_days, "seed": seed}
    if kind == "btyd":
        out = _train_btyd(snaps, stages, report=report, **common)
    else:
        features = feature_columns(mapping, windows=windows)
        out = _train_candidates(kind, estimator, snaps, stages, features, report=report, **common)
    notes += out.pop("notes")

    truth = reference_parameters(wh)
    metrics = out["metrics"]
    tables = out["tables"]
    if truth is not None:
        report("scoring the reference predictor (true sample parameters)", 0.9)
        ref_metrics, ref_tables, ref_note = reference_predictions(truth, kind, test.frame, **common)
        metrics.update(ref_metrics)
        tables.update(ref_tables)
        notes.append(ref_note)
    metrics["train_rows"] = out["training_rows"]
    metrics["test_rows"] = test.rows
    comparison, warnings = [], []
    for judged_as in ("churn", "ltv") if kind == "btyd" else (kind,):  # BTYD: as both
        rows, said = bl.compare(judged_as, metrics, out["baselines"])
        comparison, warnings = comparison + rows, warnings + said

    from sqltraits_kit.modelling.registry import ModelCard, library_versions

    card = ModelCard(
        name=name,
        kind=kind,
        estimator=out["estimator"],
        features=out["features"],
        mapping=mapping.to_dict(),
        cutoff=train_cutoff.date().isoformat(),
        test_cutoff=test_cutoff.date().isoformat(),
        horizon_days=horizon_days,
        windows=list(windows),
        churn_on=churn_on,
        metrics=metrics,
        training_rows=out["training_rows"],
        test_rows=test.rows,
        data_fingerprint=out["fingerprint"],
        library_versions=library_versions(),
        warehouse=wh.display_url,
        params=out.get("params"),
        notes=notes,
        training_cutoffs=_iso(tested_snaps),
        baselines=out["baselines"],
        comparison=comparison,
        warnings=warnings,
        selection=out.get("selection"),
        refit=out.get("refit"),
    )
    saved = False
    if registry is not None:
        report(f"saving to the registry {registry.root}", 0.97)
        card = registry.save(out["model"], card)
        saved = True
    report("done", 1.0)
    return TrainResult(
        card=card,
        model=out["model"],
        metrics=metrics,
        tables=tables,
        saved=saved,
        seconds=time.perf_counter() - started,
        tested_model=out["tested_model"],
    )


def _baselines(
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


def _pair_or_none(frame: pd.DataFrame, notes: list[str]) -> BtydPair | None:
    try:
        return btyd_pair(frame)
    except (DataError, RuntimeError) as exc:
        notes.append(f"BTYD baseline left out: {exc}")
        return None


def _train_candidates(
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
    if estimator == "auto" and (validation is None or not any(s.rows for s in val_snaps)):
        champion = FALLBACK[kind]
        notes.append(
            f"too little history for a validation window before {snaps[1].cutoff.date()}: "
            f"{champion} was chosen without one, and no other candidate was tried"
        )
        names = [champion]
    elif estimator == "auto":
        report(f"fitting {len(names)} candidates for the validation window", 0.45)
        v_fitted, v_failed = sel.fit_candidates(kind, names, val_snaps, features, **fit)
        y_val = validation.frame[target].to_numpy(dtype=float)
        v_pred = {n: sel.predict(kind, f.model, validation.frame) for n, f in v_fitted.items()}
        v_metrics = {n: sel.evaluate(kind, y_val, p) for n, p in v_pred.items()}
        members = sel.blend_members(kind, v_metrics)
        if len(members) >= 2:
            v_metrics["blend"] = sel.evaluate(
                kind, y_val, np.mean([v_pred[m] for m in members], axis=0)
            )
        champion, reason = sel.choose(kind, v_metrics, [*names, "blend"])
        val_pair = _pair_or_none(stack(val_snaps[:1]), notes)
        selection = {
            "selected_by": sel.SELECT_BY[kind][0],
            "validation_cutoff": validation.cutoff.date().isoformat(),
            "validation_fit_cutoffs": _iso(val_snaps),
            "candidates": {n: {"validation": m} for n, m in v_metrics.items()},
            "failed": v_failed,
            "blend_members": members if len(members) >= 2 else [],
            "champion": champion,
            "reason": reason,
            "baselines_validation": _baselines(kind, validation.frame, val_pair, horizon_days)[0],
        }
        names = [n for n in names if n in v_fitted]

    tested_snaps = [snaps[j] for j in stages.tested]
    report(f"fitting {', '.join(names)} on {stack(tested_snaps).shape[0]:,} rows", 0.6)
    fitted, failed = sel.fit_candidates(kind, names, tested_snaps, features, **fit)
    needed = members if champion == "blend" else [champion]
    if any(m not in fitted for m in needed):
        reasons = "; ".join(f"{n}: {failed.get(n, 'not fitted')}" for n in needed)
        raise DataError(f"the {champion} model could not be fitted on the training rows: {reasons}")
    test = snaps[stages.test].frame
    y_test = test[target].to_numpy(dtype=float)
    t_pred = {n: sel.predict(kind, f.model, test) for n, f in fitted.items()}
    if len(members) >= 2 and all(m in fitted for m in members):
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
    pair = _pair_or_none(snaps[stages.tested[0]].frame, notes)
    baselines, baseline_tables = _baselines(kind, test, pair, horizon_days)
    tables.update(baseline_tables)

    model, refit = tested_model, None
    if stages.refit:
        refit_snaps = [snaps[j] for j in stages.refit]
        report(f"refitting {champion} on the latest snapshots", 0.88)
        again, why = sel.fit_candidates(kind, needed, refit_snaps, features, **fit)
        if all(m in again for m in needed):
            model = (
                sel.blend(kind, again, members) if champion == "blend" else again[champion].model
            )
            refit_data = pd.concat([again[m].data for m in needed], axis=1)
            refit = {
                "cutoffs": _iso(refit_snaps),
                "training_rows": max(again[m].rows for m in needed),
                "data_fingerprint": fingerprint(
                    refit_data.loc[:, ~refit_data.columns.duplicated()]
                ),
            }
        else:
            notes.append(f"refit failed, the tested model is saved: {why}")
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


def _train_btyd(
    snaps: dict[int, Snapshot], stages: Any, *, horizon_days: int, seed: int, report: Progress
) -> dict[str, Any]:
    notes: list[str] = []
    train, test = snaps[stages.tested[0]].frame, snaps[stages.test].frame
    report("fitting BG/NBD and Gamma-Gamma", 0.6)
    tested = btyd_pair(train)
    predicted = btyd_predictions(tested, test, horizon_days)
    churned, ltv = test["churned"].to_numpy(float), test["ltv"].to_numpy(float)
    metrics, tables = churn_evaluation(churned, predicted["churn"])
    m, t = ltv_evaluation(ltv, predicted["ltv"], prefix="ltv_")
    metrics.update(m)
    tables.update(t)
    metrics = {k: v for k, v in metrics.items() if k != "rows"}
    tables["ltv_scatter"] = scatter(ltv, predicted["ltv"], seed=seed)
    churn_baselines, more = _baselines("churn", test, None, horizon_days)
    tables.update(more)
    ltv_baselines, more = _baselines("ltv", test, None, horizon_days, prefix="ltv_")
    tables.update(more)
    model, refit = tested, None
    if stages.refit:
        report("refitting BG/NBD and Gamma-Gamma on the latest snapshot", 0.85)
        latest = snaps[stages.refit[0]]
        model = btyd_pair(latest.frame)
        refit = {
            "cutoffs": _iso([latest]),
            "training_rows": latest.rows,
            "data_fingerprint": fingerprint(latest.frame[["profile_id", *RFM]]),
            "params_tested": tested.params(),
        }
    return {
        "estimator": "btyd",
        "features": list(RFM),
        "model": model,
        "tested_model": tested,
        "params": model.params(),
        "metrics": metrics,
        "tables": tables,
        # Its own BTYD baseline would be itself: only the rules.
        "baselines": {**churn_baselines, **ltv_baselines},
        "training_rows": len(train),
        "fingerprint": fingerprint(train[["profile_id", *RFM, "churned", "ltv"]]),
        "refit": refit,
        "notes": notes,
    }


def save_result(result: TrainResult, registry: Registry) -> TrainResult:
    """Save an already trained result (the app trains first, then the user saves)."""
    card = registry.save(result.model, result.card)
    return dataclasses.replace(result, card=card, saved=True)
