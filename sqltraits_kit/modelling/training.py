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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from sqltraits_kit import formatting as fmt
from sqltraits_kit.errors import ConfigError, DataError
from sqltraits_kit.modelling import baselines as bl
from sqltraits_kit.modelling.btyd import BtydPair
from sqltraits_kit.modelling.champion import iso, judge, train_candidates
from sqltraits_kit.modelling.estimators import CANDIDATES, make_estimator
from sqltraits_kit.modelling.evaluation import (
    btyd_pair,
    btyd_predictions,
    churn_evaluation,
    ltv_evaluation,
    reference_parameters,
    reference_predictions,
    scatter,
)
from sqltraits_kit.modelling.features import (
    CHURN_ON,
    DEFAULT_WINDOWS,
    FeatureSpec,
    TableMapping,
    as_spec,
    data_end,
    data_span,
    feature_columns,
    to_instant,
)
from sqltraits_kit.modelling.snapshots import RFM, Plan, Snapshot, fingerprint, plan, pull

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

    def to_text(self, *, saved_in: str | None = None) -> str:
        """What was trained and how well it did, for a person (the CLI's output)."""
        card = self.card
        where = f"saved as {card.ref}" + (f" in {saved_in}" if saved_in else "")
        lines = [
            f"{card.kind} model ({card.estimator}) {where if self.saved else 'not saved'}, "
            f"trained in {fmt.seconds(self.seconds)}",
            f"  cutoff {fmt.instant(card.cutoff)} -> test {fmt.instant(card.test_cutoff)}, "
            f"horizon {card.horizon_days} days",
            f"  rows: {fmt.count(card.training_rows)} training, {fmt.count(card.test_rows)} test",
        ]
        if card.training_cutoffs:
            lines.append(f"  training snapshots: {', '.join(card.training_cutoffs)}")
        return "\n".join(lines + card.to_text())


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
    feature_spec: FeatureSpec | Mapping[str, Any] | str | Path | None = None,
    seed: int = 0,
) -> TrainResult:
    """Train a churn or LTV model on ``wh``, test it out of time beside baselines, save it if asked.

    ``kind`` is ``churn`` or ``ltv`` (``btyd``, or ``estimator="btyd"``, fits the BG/NBD +
    Gamma-Gamma pair, scored on both). ``estimator`` ``auto`` (the default) trains every
    candidate and keeps the one that does best on a validation window before the test window.
    ``snapshots`` cutoffs a horizon apart are stacked for training; with ``refit`` the model
    saved is fitted again on the latest complete window after testing. ``feature_spec`` (a
    :class:`~sqltraits_kit.modelling.feature_spec.FeatureSpec`, its dict or a TOML path) adds
    your own features to the built-in set, or replaces it. With ``registry`` the model is saved
    as the next version of ``name`` (default: the kind). ``progress(message, fraction)`` hears
    about each step.

    Longer than ~80 lines on purpose: it reads top to bottom as the recipe (checks, cutoffs,
    snapshots in the warehouse, candidates, reference, baselines, card, save), each step one
    call; the card's ~25 fields are most of the rest.
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
    if isinstance(feature_spec, str | Path):
        feature_spec = FeatureSpec.load(feature_spec)
    spec = as_spec(feature_spec)

    report("checking the table mapping", 0.0)
    mapping.validate(wh)
    log_start, log_end = data_span(wh, mapping)
    train_cutoff, test_cutoff = _cutoffs(log_end, cutoff, horizon_days)

    auto = estimator == "auto"
    stages = plan(1 if kind == "btyd" else snapshots, validate=auto, refit=refit)
    needed = sorted({stages.test, *stages.tested, *stages.validation_fit, *stages.refit})
    if stages.validation is not None:
        needed = sorted({*needed, stages.validation})
    snaps, notes = _pull_snapshots(
        wh,
        mapping,
        needed,
        test_cutoff=test_cutoff,
        horizon_days=horizon_days,
        windows=windows,
        churn_on=churn_on,
        max_rows=max_rows,
        spec=spec,
        report=report,
    )
    stages, left_out = _enough_history(stages, snaps, log_start=log_start, longest=max(windows))
    notes += left_out
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
        features = [] if spec and spec.replace else feature_columns(mapping, windows=windows)
        features += spec.columns() if spec else []
        for static in spec.static_attributes() if spec else []:
            notes.append(
                f"feature {static} has no as_of_column: today's value is used at every cutoff "
                "(a leak if it changes with the outcome)"
            )
        out = train_candidates(kind, estimator, snaps, stages, features, report=report, **common)
    notes += out.pop("notes")

    metrics, tables = out["metrics"], out["tables"]
    notes += _add_reference(wh, kind, test, metrics, tables, report=report, **common)
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
        training_cutoffs=iso(tested_snaps),
        baselines=out["baselines"],
        comparison=comparison,
        warnings=warnings,
        selection=out.get("selection"),
        refit=out.get("refit"),
        feature_spec=spec.to_dict() if spec else None,
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


def _cutoffs(
    end: dt.datetime, cutoff: dt.date | dt.datetime | str | None, horizon_days: int
) -> tuple[dt.datetime, dt.datetime]:
    """The training and test cutoffs: by default two horizons before the data end, so that the
    out-of-time test has a full horizon of labels; a given cutoff must leave room for it."""
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
    return train_cutoff, test_cutoff


def _pull_snapshots(
    wh: Warehouse,
    mapping: TableMapping,
    needed: Sequence[int],
    *,
    test_cutoff: dt.datetime,
    horizon_days: int,
    report: Progress,
    **options: Any,
) -> tuple[dict[int, Snapshot], list[str]]:
    """The snapshots ``j`` horizons before the test cutoff, built in the warehouse; and notes."""
    snaps: dict[int, Snapshot] = {}
    notes: list[str] = []
    for i, j in enumerate(needed):
        when = test_cutoff - dt.timedelta(days=j * horizon_days)
        report(f"building rows at {when.date()} in the warehouse", 0.02 + 0.4 * i / len(needed))
        snaps[j] = pull(wh, mapping, cutoff=when, horizon_days=horizon_days, **options)
        if snaps[j].step > 1:
            notes.append(f"rows at {when.date()}: every {snaps[j].step}th profile by id")
    return snaps, notes


def _enough_history(
    stages: Plan, snaps: dict[int, Snapshot], *, log_start: dt.datetime, longest: int
) -> tuple[Plan, list[str]]:
    """The stages without the training rows the log is too young for, and a note for each.

    Where the log starts less than the longest feature window before a cutoff, every windowed
    feature there equals its all-time total: a model fitted on such rows learns weights that
    cancel out and explode on a profile with a longer history (a Poisson GLM's test MAE of
    1e35 on a real log one year long, at 180 days). Those rows are left out of every fit; the
    test and validation rows are kept, as profiles that young get scored too.
    """
    edge = log_start + dt.timedelta(days=longest)
    fitted_on = {*stages.tested, *stages.validation_fit, *stages.refit}
    short = sorted(j for j in fitted_on if snaps[j].rows and snaps[j].cutoff < edge)
    notes = [
        f"rows at {snaps[j].cutoff.date()} left out of training: the log starts on "
        f"{log_start.date()}, less than the {longest}-day feature window before them"
        for j in short
    ]
    left = [j for j in stages.tested if j not in short and snaps[j].rows]
    if not left and any(j in short for j in stages.tested):
        first = snaps[stages.tested[0]].cutoff.date()
        raise DataError(
            f"the log starts on {log_start.date()}, less than the {longest}-day feature window "
            f"before the training cutoff {first}: choose a later cutoff, a shorter horizon or "
            "shorter feature windows"
        )

    def keep(js: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(j for j in js if j not in short)

    trimmed = dataclasses.replace(
        stages,
        tested=keep(stages.tested),
        validation_fit=keep(stages.validation_fit),
        refit=keep(stages.refit),
    )
    return trimmed, notes


def _add_reference(
    wh: Warehouse,
    kind: str,
    test: Snapshot,
    metrics: dict[str, Any],
    tables: dict[str, Any],
    *,
    report: Progress,
    **common: Any,
) -> list[str]:
    """On the kit's sample, whose true parameters are known: the reference predictor's figures
    beside the model's (``reference_*`` metrics); returns its note."""
    truth = reference_parameters(wh)
    if truth is None:
        return []
    report("scoring the reference predictor (true sample parameters)", 0.9)
    ref_metrics, ref_tables, ref_note = reference_predictions(truth, kind, test.frame, **common)
    metrics.update(ref_metrics)
    tables.update(ref_tables)
    return [ref_note]


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
    churn_baselines, more = judge("churn", test, None, horizon_days)
    tables.update(more)
    ltv_baselines, more = judge("ltv", test, None, horizon_days, prefix="ltv_")
    tables.update(more)
    model, refit = tested, None
    if stages.refit:
        report("refitting BG/NBD and Gamma-Gamma on the latest snapshot", 0.85)
        latest = snaps[stages.refit[0]]
        model = btyd_pair(latest.frame)
        refit = {
            "cutoffs": iso([latest]),
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
