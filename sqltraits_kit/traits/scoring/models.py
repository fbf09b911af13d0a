"""The models of a scoring run and what it reports: loading and checking them, their columns,
the scikit-learn reference scores, the as-of date."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sqltraits_kit.errors import ConfigError, ModelLoadError
from sqltraits_kit.modelling.features import TableMapping, data_end, to_instant
from sqltraits_kit.traits.output import score_columns

if TYPE_CHECKING:
    import pandas as pd

    from sqltraits_kit.modelling.registry import LoadedModel, ModelCard, Registry
    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "ModelRun",
    "ScoreResult",
    "ScoredModel",
    "as_of_day",
    "check_distinct_columns",
    "day",
    "default_as_of",
    "predict_scores",
    "resolve_models",
    "trait_columns",
]


@dataclass(frozen=True)
class ModelRun:
    """How one model was scored."""

    ref: str
    kind: str
    columns: tuple[str, ...]
    path: str  # "warehouse" | "streamed"
    reason: str
    parity_max_diff: float | None = None
    parity_rows: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ScoreResult:
    """One scoring run: where it wrote, how many rows, and which path each model took."""

    table: str
    history_table: str | None
    run_id: str
    id_column: str
    rows: int
    as_of: dt.datetime
    scored_at: dt.datetime
    models: tuple[ModelRun, ...]
    columns: tuple[str, ...]
    atomic: bool
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["as_of"] = self.as_of.date().isoformat()
        out["scored_at"] = self.scored_at.isoformat()
        out["models"] = [m.to_dict() for m in self.models]
        out["timings"] = {k: round(v, 3) for k, v in self.timings.items()}
        return out


def trait_columns(card: ModelCard, /) -> list[str]:
    """The output columns a model writes, named from its kind and horizon: a 180-day churn
    model writes ``churn_probability_180d``, a 90-day LTV model ``predicted_ltv_90d``, the BTYD
    pair ``p_alive`` and ``p_no_purchase_``/``expected_purchases_``/``expected_spend_{h}d``
    (:func:`sqltraits_kit.traits.output.score_columns`, where every name is decided)."""
    columns = score_columns(card.kind, int(card.horizon_days))
    if not columns:
        raise ModelLoadError(f"model {card.ref} has unknown kind {card.kind!r}")
    return columns


def check_distinct_columns(cards: Iterable[ModelCard], /) -> None:
    """Refuse models that would write the same output column, naming both, before anything is
    written: two models of one kind and horizon (``churn`` and ``churn_v2``, both 90-day churn)
    cannot share an output table. Column names never depend on a model's name, so a trait set
    keeps reading the same column when its model is retrained or renamed."""
    seen: dict[str, ModelCard] = {}
    for card in cards:
        for column in trait_columns(card):
            first = seen.get(column)
            if first is not None and first.ref != card.ref:
                raise ConfigError(
                    f"models {first.ref} and {card.ref} both write column {column!r} (both are "
                    f"{int(card.horizon_days)}-day {card.kind} models): score them into separate "
                    "output tables, or train one over another horizon"
                )
            seen[column] = card


def predict_scores(model: Any, kind: str, frame: pd.DataFrame) -> np.ndarray:
    """The reference scores, straight from scikit-learn, as training evaluated them: the
    probability of class 1 for churn, the prediction clipped at 0 for LTV."""
    if kind == "churn":
        classes = list(model.classes_)
        if 1 not in classes:
            raise ModelLoadError(f"churn model has no class 1 (classes: {classes})")
        return np.asarray(model.predict_proba(frame)[:, classes.index(1)], dtype=float)
    return np.clip(np.asarray(model.predict(frame), dtype=float), 0.0, None)


def day(when: dt.datetime) -> dt.datetime:
    return dt.datetime(when.year, when.month, when.day)


def default_as_of(wh: Warehouse, mapping: TableMapping | None = None) -> dt.date:
    """The day after the latest event: scores then see every event the warehouse holds."""
    return (day(data_end(wh, mapping or TableMapping())) + dt.timedelta(days=1)).date()


def as_of_day(value: Any) -> dt.datetime:
    when = to_instant(value, name="as_of")
    if when != day(when):
        raise ConfigError(
            f"as_of must be a date (scores are as of midnight UTC), got {value!r}; "
            f"use {when.date().isoformat()} or {(when.date() + dt.timedelta(days=1)).isoformat()}"
        )
    return when


@dataclass
class ScoredModel:
    """A model of the run, loaded and checked, with the columns it writes."""

    loaded: LoadedModel
    columns: list[str]
    mapping: TableMapping
    windows: tuple[int, ...]
    features: list[str]  # in the order the fitted model takes them, whatever the card's order

    @property
    def card(self) -> ModelCard:
        return self.loaded.card

    @property
    def feature_key(self) -> str:
        spec = self.card.feature_spec
        return json.dumps([self.mapping.to_dict(), list(self.windows), spec], sort_keys=True)


def resolve_models(models: Any, registry: Registry | str | Path | None) -> list[ScoredModel]:
    from sqltraits_kit.modelling.registry import LoadedModel, Registry, parse_ref

    items = [models] if isinstance(models, str | LoadedModel) else list(models or [])
    if not items:
        raise ConfigError("no model to score with: name at least one (NAME or NAME@VERSION)")
    reg = registry if isinstance(registry, Registry) else Registry(registry or "models")
    out: list[ScoredModel] = []
    for item in items:
        if isinstance(item, str):
            name, version = parse_ref(item)
            loaded = reg.load(name, version)
        elif isinstance(item, LoadedModel):
            loaded = item
        else:
            raise ConfigError(f"a model is NAME, NAME@VERSION or a LoadedModel, got {item!r}")
        card = loaded.card
        try:
            mapping = TableMapping.from_dict(card.mapping or {})
        except ConfigError as exc:
            raise ModelLoadError(f"model {card.ref}: its table mapping is invalid: {exc}") from None
        windows = tuple(card.windows or ())
        out.append(ScoredModel(loaded, trait_columns(card), mapping, windows, loaded.features))
    refs = [m.card.ref for m in out]
    if len(set(refs)) != len(refs):
        raise ConfigError(f"the same model version is named twice: {', '.join(refs)}")
    check_distinct_columns(m.card for m in out)
    first = out[0].mapping
    for m in out[1:]:
        if (m.mapping.profiles_table, m.mapping.profile_id) != (
            first.profiles_table,
            first.profile_id,
        ):
            raise ConfigError(
                f"models {out[0].card.ref} and {m.card.ref} score different profiles "
                f"({first.profiles_table}.{first.profile_id} vs "
                f"{m.mapping.profiles_table}.{m.mapping.profile_id}): use separate output tables"
            )
    return out
