"""The rules of a trait-set spec: its keys, its parts and the checks its constructor runs.

:class:`~sqltraits_kit.traits.traitset.spec.TraitSet` calls :func:`validate_spec` on every
instance, so a trait set that exists is a usable one; the errors name the TOML key
(``derived[1].labels``) so the file is easy to fix.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.traits.traitset.queries import check_read_only_query

__all__ = [
    "DerivedTrait",
    "ModelRef",
    "TraitSetError",
    "derived_from_dict",
    "model_from_dict",
    "snake_case",
    "validate_spec",
]

Kind = Literal["user", "account"]
OnRemove = Literal["null", "keep"]
DerivedType = Literal["tiers", "quantiles", "flag"]

KINDS = ("user", "account")
ON_REMOVE = ("null", "keep")
OPERATORS = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
FLAG_OPS = tuple(OPERATORS)
TOP_KEYS = {
    "name",
    "description",
    "kind",
    "id_column",
    "table",
    "query",
    "on_remove",
    "drift_threshold",
    "exclude",
    "traits",
    "decimals",
    "tolerance",
    "relative_tolerance",
    "model",
    "derived",
    "holdout",
}
DERIVED_KEYS = {
    "tiers": {"name", "type", "column", "thresholds", "labels"},
    "quantiles": {"name", "type", "column", "bins", "labels"},
    "flag": {"name", "type", "column", "op", "value"},
}
MODEL_KEYS = {"name", "version", "output_table", "as_of", "also"}


class TraitSetError(ConfigError):
    """A trait-set file or value is wrong; ``key`` names the key (``derived[1].labels``)."""

    def __init__(self, message: str, *, key: str | None = None, path: str | Path | None = None):
        where = ": ".join(str(p) for p in (path, key) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.key = key
        self.path = path


def snake_case(name: str) -> str:
    """Lower snake_case, as Segment keys traits: ``churnProbability`` -> ``churn_probability``.

    Camel case is split (``LTVScore`` -> ``ltv_score``), anything that is not a letter or a digit
    becomes one underscore, and leading/trailing underscores go.
    """
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", str(name))
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    text = re.sub(r"[^0-9A-Za-z]+", "_", text)
    return text.strip("_").lower()


# --------------------------------------------------------------------------- parts


@dataclass(frozen=True, kw_only=True)
class DerivedTrait:
    """A trait computed from one source column: ``tiers``, ``quantiles`` or a boolean ``flag``."""

    name: str
    type: DerivedType
    column: str
    thresholds: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()
    bins: int = 10
    op: str = ">="
    value: float | int | str | bool | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "column": self.column}
        if self.type == "tiers":
            out["thresholds"] = list(self.thresholds)
            out["labels"] = list(self.labels)
        elif self.type == "quantiles":
            out["bins"] = self.bins
            if self.labels:
                out["labels"] = list(self.labels)
        else:
            out["op"] = self.op
            out["value"] = self.value
        return out


@dataclass(frozen=True, kw_only=True)
class ModelRef:
    """The ``[model]`` section: what the scoring step runs before this trait set is published."""

    name: str
    version: str | int | None = None  # a registry version, or "active"
    output_table: str | None = None
    as_of: str | dt.date | dt.datetime | None = None
    # More registry models scored into the same output table ("btyd", "ltv@2"), joined on the id.
    also: tuple[str, ...] = ()

    def refs(self) -> list[str]:
        """Registry references for the scoring step: the main model first."""
        main = self.name
        if self.version not in (None, "", "active", "latest"):
            main = f"{self.name}@{self.version}"
        return [main, *self.also]

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in dataclasses.asdict(self).items() if v is not None and v != ""}
        if self.also:
            out["also"] = list(self.also)
        else:
            out.pop("also", None)
        return out


class SpecLike(Protocol):
    """What :func:`validate_spec` reads of a trait set."""

    name: str
    table: str | None
    query: str | None
    kind: str
    id_column: str | None
    description: str
    traits: Mapping[str, str]
    exclude: tuple[str, ...]
    derived: tuple[DerivedTrait, ...]
    decimals: Mapping[str, int]
    tolerance: Mapping[str, float]
    on_remove: str
    drift_threshold: float
    model: ModelRef | None
    path: Path | None

    @property
    def identifier(self) -> str: ...


def derived_from_dict(raw: Any, key: str, err: Any) -> DerivedTrait:
    if not isinstance(raw, Mapping):
        raise err("expected a table with name, type and column", key)
    kind = raw.get("type")
    if kind not in DERIVED_KEYS:
        raise err(f"type must be one of {', '.join(DERIVED_KEYS)}, got {kind!r}", f"{key}.type")
    unknown = sorted(set(raw) - DERIVED_KEYS[kind])
    if unknown:
        allowed = ", ".join(sorted(DERIVED_KEYS[kind]))
        raise err(f"not a key of a {kind!r} trait (allowed: {allowed})", f"{key}.{unknown[0]}")
    for name in ("name", "column"):
        if not isinstance(raw.get(name), str) or not raw[name].strip():
            raise err("must be a non-empty string", f"{key}.{name}")
    values = dict(raw)
    for name in ("thresholds", "labels"):
        if name in values:
            if not isinstance(values[name], list):
                raise err("expected a list", f"{key}.{name}")
            values[name] = tuple(values[name])
    return DerivedTrait(**values)


def model_from_dict(raw: Mapping[str, Any], err: Callable[[str, str], TraitSetError]) -> ModelRef:
    """The ``[model]`` table as a :class:`ModelRef`; ``err(message, key)`` builds the error."""
    unknown = sorted(set(raw) - MODEL_KEYS)
    if unknown:
        raise err(f"unknown key (allowed: {', '.join(sorted(MODEL_KEYS))})", f"model.{unknown[0]}")
    if not isinstance(raw.get("name"), str) or not raw["name"].strip():
        raise err("the model needs a non-empty name", "model.name")
    also = raw.get("also", [])
    if isinstance(also, str) or not isinstance(also, list | tuple):
        raise err("expected a list of registry references", "model.also")
    if not all(isinstance(a, str) and a.strip() for a in also):
        raise err("every entry must be a non-empty model name", "model.also")
    fields = {k: raw[k] for k in MODEL_KEYS - {"also"} if k in raw}
    return ModelRef(**fields, also=tuple(a.strip() for a in also))


# --------------------------------------------------------------------------- validation


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_spec(ts: SpecLike, /) -> None:
    """Raise :class:`TraitSetError` naming the first key of ``ts`` that breaks a rule."""

    def err(message: str, key: str) -> TraitSetError:
        return TraitSetError(message, key=key, path=ts.path)

    _check_fields(ts, err)
    _check_trait_names(ts, err)
    _check_numbers(ts, err)
    if ts.model is not None:
        _check_model(ts.model, err)


def _check_fields(ts: SpecLike, err: Callable[[str, str], TraitSetError]) -> None:
    if not isinstance(ts.name, str) or not ts.name.strip():
        raise err("must be a non-empty string", "name")
    if ts.kind not in KINDS:
        raise err(f"must be 'user' (identify) or 'account' (group), got {ts.kind!r}", "kind")
    if (ts.table is None) == (ts.query is None):
        raise err("set exactly one of `table` (a table name) or `query` (a SELECT)", "table")
    if ts.table is not None and (not isinstance(ts.table, str) or not ts.table.strip()):
        raise err("must be a non-empty table name", "table")
    if ts.query is not None:
        if not isinstance(ts.query, str) or not ts.query.strip():
            raise err("must be a non-empty SELECT statement", "query")
        try:
            check_read_only_query(ts.query)
        except ConfigError as exc:
            raise err(str(exc), "query") from None
    if not isinstance(ts.id_column, str) or not ts.id_column.strip():
        raise err(f"must be a non-empty column name, got {ts.id_column!r}", "id_column")
    if not isinstance(ts.description, str):
        raise err("must be a string", "description")
    if ts.on_remove not in ON_REMOVE:
        raise err(
            f"must be 'null' (Segment's rule: traits of profiles that drop out are set to null) "
            f"or 'keep', got {ts.on_remove!r}",
            "on_remove",
        )
    if not is_number(ts.drift_threshold) or not ts.drift_threshold > 0:
        raise err(f"must be a number > 0 (PSI), got {ts.drift_threshold!r}", "drift_threshold")
    for column in ts.exclude:
        if not isinstance(column, str) or not column:
            raise err(f"must list column names, got {column!r}", "exclude")
    if ts.exclude and ts.traits:
        raise err("use either [traits] (an explicit list) or `exclude`, not both", "exclude")


def _check_trait_names(ts: SpecLike, err: Callable[[str, str], TraitSetError]) -> None:
    names: dict[str, str] = {}  # trait name -> key that defines it
    for column, trait in ts.traits.items():
        key = f"traits.{column}"
        if not isinstance(column, str) or not column:
            raise err("column names must be non-empty strings", "traits")
        if not isinstance(trait, str) or not trait.strip():
            raise err(f"trait name must be a non-empty string, got {trait!r}", key)
        if column == ts.id_column:
            raise err(f"{column!r} is the identifier column, not a trait", key)
        if trait in names:
            raise err(f"trait name {trait!r} is also given by {names[trait]}", key)
        names[trait] = key
    for i, d in enumerate(ts.derived):
        _validate_derived(d, f"derived[{i}]", err)
        if d.name in names:
            raise err(
                f"trait name {d.name!r} is also given by {names[d.name]}", f"derived[{i}].name"
            )
        names[d.name] = f"derived[{i}].name"
    holdout = getattr(ts, "holdout", None)
    if holdout is not None:
        flag = holdout.trait_name(ts.name)
        if flag in names:
            raise err(f"trait name {flag!r} is also given by {names[flag]}", "holdout.name")
        names[flag] = "holdout.name"
    for trait in names:
        if trait == ts.identifier:
            raise err(f"trait name {trait!r} is the identifier's name", names[trait])


def _check_numbers(ts: SpecLike, err: Callable[[str, str], TraitSetError]) -> None:
    derived_names = {d.name for d in ts.derived}
    for key, mapping in (
        ("decimals", ts.decimals),
        ("tolerance", ts.tolerance),
        ("relative_tolerance", ts.relative_tolerance),
    ):
        for trait, value in mapping.items():
            where = f"{key}.{trait}"
            if trait in derived_names:
                raise err("derived traits are tiers or flags, not numbers", where)
            if ts.traits and trait not in ts.traits.values():
                raise err(f"no trait {trait!r} in [traits]", where)
            if key == "decimals" and (
                not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 12
            ):
                raise err(f"must be a whole number of decimals from 0 to 12, got {value!r}", where)
            if key == "tolerance" and (
                not is_number(value) or not math.isfinite(value) or value < 0
            ):
                raise err(f"must be a number >= 0, got {value!r}", where)
            if key == "relative_tolerance" and (
                not is_number(value) or not math.isfinite(value) or not 0 <= value < 1
            ):
                raise err(
                    f"must be a fraction of the published value from 0 to below 1 "
                    f"(0.05 = 5%), got {value!r}",
                    where,
                )


def _check_model(m: ModelRef, err: Callable[[str, str], TraitSetError]) -> None:
    if m.version is not None and not isinstance(m.version, str | int):
        raise err("must be a registry version or a name such as 'active'", "model.version")
    if m.output_table is not None and not (isinstance(m.output_table, str) and m.output_table):
        raise err("must be a table name", "model.output_table")
    if m.as_of is not None and not isinstance(m.as_of, str | dt.date):
        raise err("must be a date, a datetime or a string", "model.as_of")


def _validate_derived(d: DerivedTrait, key: str, err: Any) -> None:
    if d.type == "tiers":
        t = d.thresholds
        if not t or not all(is_number(x) and math.isfinite(x) for x in t):
            raise err("need a non-empty list of finite numbers", f"{key}.thresholds")
        if any(b <= a for a, b in itertools.pairwise(t)):
            raise err(f"must be strictly increasing, got {list(t)}", f"{key}.thresholds")
        if len(d.labels) != len(t) + 1:
            raise err(
                f"expected {len(t) + 1} labels for {len(t)} thresholds, got {len(d.labels)}",
                f"{key}.labels",
            )
    elif d.type == "quantiles":
        if not isinstance(d.bins, int) or isinstance(d.bins, bool) or not 2 <= d.bins <= 100:
            raise err(f"must be a whole number from 2 to 100, got {d.bins!r}", f"{key}.bins")
        if d.labels and len(d.labels) != d.bins:
            raise err(f"expected {d.bins} labels, got {len(d.labels)}", f"{key}.labels")
    else:
        if d.op not in FLAG_OPS:
            raise err(f"must be one of {' '.join(FLAG_OPS)}, got {d.op!r}", f"{key}.op")
        if d.value is None or (isinstance(d.value, float) and not math.isfinite(d.value)):
            raise err("needs a finite value to compare with", f"{key}.value")
        if not isinstance(d.value, int | float | str | bool):
            raise err(f"must be a number, a string or a boolean, got {d.value!r}", f"{key}.value")
    if d.labels and not all(isinstance(x, str) and x for x in d.labels):
        raise err("labels must be non-empty strings", f"{key}.labels")
    if len(set(d.labels)) != len(d.labels):
        raise err(f"labels must be distinct, got {list(d.labels)}", f"{key}.labels")
