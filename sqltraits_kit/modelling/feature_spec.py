"""Your own features: a spec of aggregates over any event table and profile attributes, built as
Ibis expressions in the warehouse, point in time like the built-in set.

A spec is a TOML file (``features/*.toml`` beside the trait sets) or the same as a dict::

    replace = false            # add to the built-in features (true: the models see only these)

    [[aggregate]]
    name = "support_tickets_90d"
    table = "tracks"
    profile_id = "user_id"     # default user_id
    timestamp = "timestamp"    # default timestamp
    function = "count"         # count | sum | mean | min | max | distinct
    window_days = 90           # only the last 90 days before the cutoff (default: all history)
    where = { event = "Support Ticket" }   # equality filters, all must hold

    [[aggregate]]
    name = "mean_order_items"
    table = "order_completed"
    function = "mean"
    column = "items"

    [[attribute]]
    name = "plan"
    table = "accounts"         # default: the profiles table
    profile_id = "id"          # default: the mapping's profile id
    column = "plan"
    categories = ["pro", "team"]   # one-hot: plan_pro, plan_team (1.0 / 0.0)
    as_of_column = "updated_at"    # a history table: the latest row before the cutoff

Aggregates read only events strictly before the cutoff; a profile without one gets 0. An
attribute with ``as_of_column`` reads the latest row before the cutoff; without one it reads
today's value at every cutoff, which leaks if the value changes with the outcome (the card
notes it). Every column is float64, so every candidate and both backends take it as it is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import ConfigError

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.warehouse import Warehouse

__all__ = ["Aggregate", "Attribute", "FeatureSpec", "spec_features"]

FUNCTIONS = ("count", "sum", "mean", "min", "max", "distinct")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"feature spec: {what} name {name!r} must be lower_snake_case")
    return name


@dataclass(frozen=True, kw_only=True)
class Aggregate:
    """One number per profile from the rows of an event table before the cutoff."""

    name: str
    table: str
    function: str = "count"
    column: str | None = None
    profile_id: str = "user_id"
    timestamp: str = "timestamp"
    window_days: int | None = None
    where: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_name(self.name, "aggregate")
        if self.function not in FUNCTIONS:
            raise ConfigError(
                f"feature spec: {self.name}: function must be one of {', '.join(FUNCTIONS)}, "
                f"got {self.function!r}"
            )
        if self.function not in ("count",) and not self.column:
            raise ConfigError(f"feature spec: {self.name}: {self.function} needs a column")
        if self.window_days is not None and (
            int(self.window_days) != self.window_days or self.window_days < 1
        ):
            raise ConfigError(f"feature spec: {self.name}: window_days must be a whole number >= 1")


@dataclass(frozen=True, kw_only=True)
class Attribute:
    """A profile's value of a column (numeric, or one-hot over ``categories``)."""

    name: str
    column: str
    table: str | None = None
    profile_id: str | None = None
    categories: Sequence[str] | None = None
    as_of_column: str | None = None

    def __post_init__(self) -> None:
        _check_name(self.name, "attribute")

    def columns(self) -> list[str]:
        if self.categories is None:
            return [self.name]
        return [_check_name(f"{self.name}_{_slug(c)}", "category") for c in self.categories]


def _slug(value: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(value).lower()).strip("_") or "blank"


@dataclass(frozen=True)
class FeatureSpec:
    """Aggregates and attributes added to (or, with ``replace``, instead of) the built-in set."""

    aggregates: tuple[Aggregate, ...] = ()
    attributes: tuple[Attribute, ...] = ()
    replace: bool = False

    def __post_init__(self) -> None:
        names = self.columns()
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"feature spec: {', '.join(twice)} named twice")

    def columns(self) -> list[str]:
        out = [a.name for a in self.aggregates]
        for attribute in self.attributes:
            out += attribute.columns()
        return out

    def static_attributes(self) -> list[str]:
        """Attributes read as they are today at every cutoff (no ``as_of_column``)."""
        return [a.name for a in self.attributes if not a.as_of_column]

    def to_dict(self) -> dict[str, Any]:
        def clean(item: Any) -> dict[str, Any]:
            values = dataclasses.asdict(item)
            return {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()
                    if v not in (None, {}, [])}  # fmt: skip

        return {
            "replace": self.replace,
            "aggregate": [clean(a) for a in self.aggregates],
            "attribute": [clean(a) for a in self.attributes],
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], /) -> FeatureSpec:
        unknown = sorted(set(values) - {"replace", "aggregate", "attribute"})
        if unknown:
            raise ConfigError(f"feature spec: unknown key(s) {', '.join(unknown)}")
        try:
            aggregates = tuple(Aggregate(**dict(a)) for a in values.get("aggregate", ()))
            attributes = tuple(Attribute(**dict(a)) for a in values.get("attribute", ()))
        except TypeError as exc:
            raise ConfigError(f"feature spec: {exc}") from None
        return cls(aggregates, attributes, bool(values.get("replace", False)))

    @classmethod
    def load(cls, path: str | Path) -> FeatureSpec:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"feature spec {path}: {exc}") from None
        return cls.from_dict(data)


def _literal(column: ir.Column, when: dt.datetime) -> ir.Value:
    import ibis

    dtype = column.type()
    if dtype.is_timestamp() and dtype.timezone is not None:
        return ibis.literal(when.replace(tzinfo=dt.UTC), type=dtype)
    return ibis.literal(when, type="timestamp")


def _time(t: ir.Table, column: str) -> ir.Column:
    col = t[column]
    return col.cast("timestamp") if col.type().is_date() else col


def _id(col: ir.Column, id_type: Any) -> ir.Column:
    return col if col.type() == id_type else col.cast(id_type)


def _aggregate(wh: Warehouse, agg: Aggregate, id_type: Any, as_of: dt.datetime) -> ir.Table:
    t = wh.table(agg.table)
    for col in (agg.profile_id, agg.timestamp, agg.column, *agg.where):
        if col:
            wh.column(t, col, table_name=agg.table)
    ts = _time(t, agg.timestamp)
    cond = [t[agg.profile_id].notnull(), ts.notnull(), ts < _literal(ts, as_of)]
    if agg.window_days:
        cond.append(ts >= _literal(ts, as_of - dt.timedelta(days=int(agg.window_days))))
    for col, value in agg.where.items():
        cond.append(t[col] == value)
    rows = t.filter(*cond)
    value_col = rows[agg.column] if agg.column else None
    if agg.function == "count":
        value = rows.count()
    elif agg.function == "distinct":
        value = value_col.nunique()
    else:
        value = getattr(value_col.cast("float64"), agg.function)()
    by = _id(rows[agg.profile_id], id_type).name("profile_id")
    return rows.group_by(by).aggregate(**{agg.name: value.cast("float64")})


def _attribute(
    wh: Warehouse, attr: Attribute, mapping: Any, id_type: Any, as_of: dt.datetime
) -> ir.Table:
    import ibis

    table = attr.table or mapping.profiles_table
    id_col = attr.profile_id or mapping.profile_id
    t = wh.table(table)
    for col in (id_col, attr.column, attr.as_of_column):
        if col:
            wh.column(t, col, table_name=table)
    rows = t.filter(t[id_col].notnull())
    if attr.as_of_column:
        ts = _time(rows, attr.as_of_column)
        rows = rows.filter(ts < _literal(ts, as_of)).mutate(_at=_time(rows, attr.as_of_column))
        latest = ibis.row_number().over(group_by=rows[id_col], order_by=ibis.desc(rows._at))
        rows = rows.mutate(_n=latest).filter(lambda r: r._n == 0)
    else:
        # One row per profile: a table holding a profile twice gives its greatest value.
        rows = rows.group_by(id_col).aggregate(**{attr.column: rows[attr.column].max()})
    values: dict[str, ir.Value] = {}
    if attr.categories is None:
        values[attr.name] = rows[attr.column].cast("float64")
    else:
        for category, name in zip(attr.categories, attr.columns(), strict=True):
            values[name] = ibis.ifelse(rows[attr.column] == category, 1.0, 0.0)
    return rows.select(profile_id=_id(rows[id_col], id_type), **values)


def spec_features(
    wh: Warehouse, mapping: Any, spec: FeatureSpec, *, as_of: dt.datetime, profiles: ir.Table
) -> ir.Table:
    """``profiles`` (one row per profile, ``profile_id`` first) with the spec's columns added;
    no NULLs: a profile without a matching row gets 0."""
    id_type = profiles.schema()["profile_id"]
    out = profiles
    parts = [_aggregate(wh, a, id_type, as_of) for a in spec.aggregates]
    parts += [_attribute(wh, a, mapping, id_type, as_of) for a in spec.attributes]
    for part in parts:
        out = out.left_join(part, "profile_id")
    filled = {c: out[c].fill_null(0.0) for c in spec.columns()}
    return out.select(*[out[c] for c in profiles.columns], **filled)
