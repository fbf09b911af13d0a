"""Testing a model fitted outside the kit, so it gets a card like the kit's own.

A data scientist fits a scikit-learn-compatible pipeline in a notebook on the kit's features
(or a feature spec) and hands it to :meth:`~sqltraits_kit.modelling.registry.Registry.register`
with the date its training outcomes end (``trained_until``). The kit cannot know what the model
saw, so it tests it on the horizon after that date only: features as of ``trained_until``,
outcomes in ``[trained_until, trained_until + H)``, the same rows the baselines are scored on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.modelling import baselines as bl
from sqltraits_kit.modelling.champion import judge, pair_or_none
from sqltraits_kit.modelling.evaluation import (
    churn_evaluation,
    ltv_evaluation,
    reference_parameters,
    reference_predictions,
)
from sqltraits_kit.modelling.features import (
    DEFAULT_WINDOWS,
    TableMapping,
    as_spec,
    data_end,
    feature_columns,
    to_instant,
)
from sqltraits_kit.modelling.selection import predict
from sqltraits_kit.modelling.snapshots import pull

if TYPE_CHECKING:
    from sqltraits_kit.warehouse import Warehouse

__all__ = ["evaluate_outside_model"]


def _features(model: Any, available: list[str]) -> list[str]:
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        raise ConfigError(
            "the model was fitted without column names: fit it on a DataFrame of the kit's "
            "features (build_features(...).to_pandas()), so it says which columns it takes"
        )
    features = [str(n) for n in names]
    missing = [f for f in features if f not in available]
    if missing:
        raise ConfigError(
            f"the model takes {', '.join(missing)}, which the kit's features (with this "
            "mapping, windows and spec) do not have"
        )
    return features


def evaluate_outside_model(
    wh: Warehouse,
    model: Any,
    *,
    kind: str,
    trained_until: dt.date | dt.datetime | str,
    mapping: TableMapping | None = None,
    horizon_days: int = 90,
    windows: Sequence[int] = DEFAULT_WINDOWS,
    feature_spec: Any = None,
    churn_on: str = "orders",
    max_rows: int | None = 250_000,
) -> dict[str, Any]:
    """The model card's fields for ``model``, tested on the horizon after ``trained_until``."""
    if kind not in ("churn", "ltv"):
        raise ConfigError(f"an outside model is a churn or an ltv model, not {kind!r}")
    needed = "predict_proba" if kind == "churn" else "predict"
    if not callable(getattr(model, needed, None)):
        raise ConfigError(f"a {kind} model needs a {needed}() method")
    mapping = mapping or TableMapping()
    mapping.validate(wh)
    spec = as_spec(feature_spec)
    horizon_days = int(horizon_days)
    test_cutoff = to_instant(trained_until, name="trained_until")
    test_cutoff = dt.datetime(test_cutoff.year, test_cutoff.month, test_cutoff.day)
    end = data_end(wh, mapping)
    if test_cutoff + dt.timedelta(days=horizon_days) > end:
        raise ConfigError(
            f"trained_until {test_cutoff.date()} leaves no complete {horizon_days}-day test "
            f"window before the data end ({end:%Y-%m-%d}): the kit tests a model only on "
            "outcomes after its training"
        )
    available = feature_columns(mapping, windows=windows) + (spec.columns() if spec else [])
    cols = _features(model, available)
    common = {"horizon_days": horizon_days, "windows": list(windows), "churn_on": churn_on}
    test = pull(wh, mapping, cutoff=test_cutoff, max_rows=max_rows, spec=spec, **common)
    before = pull(
        wh,
        mapping,
        cutoff=test_cutoff - dt.timedelta(days=horizon_days),
        max_rows=max_rows,
        **common,
    )
    if test.rows == 0:
        raise ConfigError(f"no profile exists before {test_cutoff.date()}: nothing to test on")
    frame = test.frame
    target = "churned" if kind == "churn" else "ltv"
    y = frame[target].to_numpy(dtype=float)
    p = predict(kind, model, frame)
    metrics, _tables = (churn_evaluation if kind == "churn" else ltv_evaluation)(y, p)
    metrics.pop("rows", None)
    notes: list[str] = []
    baselines, _ = judge(kind, frame, pair_or_none(before.frame, notes), horizon_days)
    truth = reference_parameters(wh)
    if truth is not None:
        ref, _, note = reference_predictions(truth, kind, frame, horizon_days=horizon_days)
        metrics.update(ref)
        notes.append(note)
    metrics["test_rows"] = test.rows
    comparison, warnings = bl.compare(kind, metrics, baselines)
    if test.step > 1:
        notes.append(f"test rows: every {test.step}th profile by id")
    klass = type(model)
    return {
        "kind": kind,
        "estimator": f"outside:{klass.__name__}",
        "features": cols,
        "mapping": mapping.to_dict(),
        "cutoff": (test_cutoff - dt.timedelta(days=horizon_days)).date().isoformat(),
        "test_cutoff": test_cutoff.date().isoformat(),
        "horizon_days": horizon_days,
        "windows": list(windows),
        "churn_on": churn_on,
        "metrics": metrics,
        "training_rows": 0,
        "test_rows": test.rows,
        "data_fingerprint": "unknown: fitted outside the kit",
        "warehouse": wh.display_url,
        "notes": notes,
        "baselines": baselines,
        "comparison": comparison,
        "warnings": warnings,
        "feature_spec": spec.to_dict() if spec else None,
        "origin": {
            "registered": True,
            "class": f"{klass.__module__}.{klass.__qualname__}",
            "trained_until": test_cutoff.date().isoformat(),
            "note": "fitted outside the kit; tested by the kit on the horizon after "
            "trained_until only",
        },
    }
