"""Per-trait distributions computed in the warehouse: only bins and a few numbers leave it.

A histogram of 1M raw points as a plotly figure is ~15 MB; binned in the warehouse it is a few
KB. So every number here is an Ibis aggregate: one query for the statistics of all traits
(null counts, min/max/mean, quantiles via ``quantile`` — ``quantile_cont`` on DuckDB,
``percentile_cont`` on PostgreSQL, both exact with linear interpolation), then one small
GROUP BY per trait for its bins.

API (one call per Preview panel; figures in :mod:`sqltraits_kit.traits.charts`)::

    summaries = summarize(table, id_column="user_id")    # {trait: TraitSummary}
    summary_frame(summaries)                             # one row per trait: null rate, pXX
    tier_sizes(table, "churn_risk_tier", labels=["low", "medium", "high"])
    summaries["churn_probability"].to_dict()             # JSON-able

Kinds: ``numeric`` (fixed-width bins between the finite min and max, ``bins`` of them; integer
traits with a small range get one bin per value), ``boolean`` and ``categorical`` (the ``top``
most frequent values plus ``"(other)"``), ``timestamp`` (min/max only) and ``other``.
NaN and ±inf are counted in ``non_finite`` and kept out of the bins and quantiles.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sqltraits_kit.traits.traitset import METADATA_COLUMNS

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd

__all__ = [
    "NULL_LABEL",
    "OTHER_LABEL",
    "QUANTILES",
    "Histogram",
    "TraitSummary",
    "summarize",
    "summarize_trait",
    "summary_frame",
    "tier_sizes",
]

#: The quantiles every numeric summary carries: name -> probability.
QUANTILES = {
    "p1": 0.01,
    "p5": 0.05,
    "p25": 0.25,
    "p50": 0.5,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}
OTHER_LABEL = "(other)"
NULL_LABEL = "(null)"

Kind = Literal["numeric", "boolean", "categorical", "timestamp", "other"]


@dataclass(frozen=True)
class Histogram:
    """Bins only. Numeric: ``edges`` has one more item than ``counts``; bins are left-closed
    ``[edge_i, edge_i+1)`` and the last one also holds the maximum. Categorical: one label per
    count, most frequent first, ``"(other)"`` last when values were cut off."""

    kind: Literal["numeric", "categorical"]
    counts: tuple[int, ...]
    edges: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.counts)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "counts": list(self.counts)}
        if self.kind == "numeric":
            out["edges"] = list(self.edges)
        else:
            out["labels"] = list(self.labels)
        return out


@dataclass(frozen=True)
class TraitSummary:
    """What the Preview page shows for one trait; :meth:`to_dict` is JSON-able."""

    name: str
    dtype: str
    kind: Kind
    rows: int
    nulls: int
    non_finite: int = 0
    distinct: int | None = None
    min: float | str | None = None  # a timestamp's min/max are ISO strings
    max: float | str | None = None
    mean: float | None = None
    quantiles: Mapping[str, float | None] = field(default_factory=dict)
    histogram: Histogram | None = None

    @property
    def null_rate(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "kind": self.kind,
            "rows": self.rows,
            "nulls": self.nulls,
            "null_rate": self.null_rate,
            "non_finite": self.non_finite,
            "distinct": self.distinct,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "quantiles": dict(self.quantiles),
            "histogram": self.histogram.to_dict() if self.histogram else None,
        }


def _kind(dtype: Any) -> Kind:
    if dtype.is_boolean():
        return "boolean"
    if dtype.is_numeric():
        return "numeric"
    if dtype.is_string() or dtype.is_uuid():
        return "categorical"
    if dtype.is_timestamp() or dtype.is_date():
        return "timestamp"
    return "other"


def _float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _finite(col: ir.Value) -> ir.BooleanValue:
    return ~col.isnan() & ~col.isinf() if col.type().is_floating() else col.notnull()


def _stats(table: ir.Table, columns: Sequence[str]) -> dict[str, Any]:
    """One aggregate query over every column; keys are ``<index>_<stat>``."""
    schema = table.schema()
    metrics: dict[str, Any] = {"rows": table.count()}
    probs = list(QUANTILES.values())
    for i, name in enumerate(columns):
        col = table[name]
        kind = _kind(schema[name])
        metrics[f"{i}_nulls"] = table.count(where=col.isnull())
        if kind == "numeric":
            fin = _finite(col)
            num = col.cast("float64")
            metrics[f"{i}_nonfinite"] = table.count(where=~fin)
            metrics[f"{i}_min"] = num.min(where=fin)
            metrics[f"{i}_max"] = num.max(where=fin)
            metrics[f"{i}_mean"] = num.mean(where=fin)
            metrics[f"{i}_q"] = num.quantile(probs, where=fin)
        elif kind in ("boolean", "categorical"):
            metrics[f"{i}_distinct"] = col.nunique()
        elif kind == "timestamp":
            metrics[f"{i}_min"] = col.min()
            metrics[f"{i}_max"] = col.max()
    return table.aggregate(**metrics).to_pyarrow().to_pylist()[0]


def _numeric_histogram(
    table: ir.Table, name: str, *, lo: float, hi: float, bins: int, integer: bool
) -> Histogram:
    import ibis

    col = table[name]
    rows = table.filter(_finite(col))
    value = rows[name].cast("float64")
    if integer and hi - lo + 1 <= bins:
        # One bin per value: deciles and counts read better as bars on whole numbers.
        n = int(hi - lo) + 1
        edges = [lo - 0.5 + k for k in range(n + 1)]
        index = (value - lo).round().cast("int64")
    elif hi > lo:
        n = bins
        width = (hi - lo) / n
        edges = [lo + k * width for k in range(n)] + [hi]
        raw = ((value - lo) / width).floor()
        index = ibis.greatest(ibis.least(raw, n - 1), 0).cast("int64")
    else:
        n = 1
        edges = [lo, hi]
        index = ibis.literal(0, "int64")
    grouped = rows.group_by(bin=index).aggregate(n=ibis._.count()).to_pyarrow().to_pylist()
    counts = [0] * n
    for row in grouped:
        counts[min(max(int(row["bin"]), 0), n - 1)] += int(row["n"])
    return Histogram(kind="numeric", counts=tuple(counts), edges=tuple(float(e) for e in edges))


def _value_counts(
    table: ir.Table, name: str, *, top: int | None
) -> tuple[list[tuple[str, int]], int]:
    """(value, count) most frequent first (ties by value), and the count of the rest."""
    import ibis

    col = table[name]
    rows = table.filter(col.notnull())
    grouped = rows.group_by(value=rows[name].cast("string")).aggregate(n=ibis._.count())
    ordered = grouped.order_by([ibis.desc("n"), "value"])
    if top is not None:
        ordered = ordered.limit(top)
    pairs = [(str(r["value"]), int(r["n"])) for r in ordered.to_pyarrow().to_pylist()]
    if top is None:
        return pairs, 0
    total = int(rows.count().execute())
    return pairs, total - sum(n for _, n in pairs)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def summarize(
    table: ir.Table,
    /,
    *,
    columns: Iterable[str] | None = None,
    id_column: str | None = None,
    bins: int = 30,
    top: int = 20,
) -> dict[str, TraitSummary]:
    """A :class:`TraitSummary` per trait, computed in the warehouse.

    ``columns`` defaults to every column except ``id_column`` and the scoring metadata
    (``model_name``, ``model_version``, ``scored_at``, ``run_id``).
    """
    if bins < 1 or top < 1:
        raise ValueError("bins and top must be at least 1")
    schema = table.schema()
    if columns is None:
        skip = {id_column, *METADATA_COLUMNS}
        names = [c for c in schema.names if c not in skip]
    else:
        names = list(columns)
        missing = [c for c in names if c not in schema.names]
        if missing:
            from sqltraits_kit.errors import UnknownTableError

            raise UnknownTableError(
                f"column {missing[0]!r} is not in the table (columns: {', '.join(schema.names)})"
            )
    if not names:
        return {}
    stats = _stats(table, names)
    rows = int(stats["rows"])
    out: dict[str, TraitSummary] = {}
    for i, name in enumerate(names):
        dtype = schema[name]
        kind = _kind(dtype)
        nulls = int(stats[f"{i}_nulls"])
        common = {"name": name, "dtype": str(dtype), "kind": kind, "rows": rows, "nulls": nulls}
        if kind == "numeric":
            lo, hi = _float(stats[f"{i}_min"]), _float(stats[f"{i}_max"])
            q = stats[f"{i}_q"] or [None] * len(QUANTILES)
            hist = None
            if lo is not None and hi is not None:
                hist = _numeric_histogram(
                    table, name, lo=lo, hi=hi, bins=bins, integer=dtype.is_integer()
                )
            out[name] = TraitSummary(
                **common,
                non_finite=int(stats[f"{i}_nonfinite"]),
                min=lo,
                max=hi,
                mean=_float(stats[f"{i}_mean"]),
                quantiles={k: _float(v) for k, v in zip(QUANTILES, q, strict=True)},
                histogram=hist,
            )
        elif kind in ("boolean", "categorical"):
            pairs, other = _value_counts(table, name, top=top)
            labels = [v for v, _ in pairs] + ([OTHER_LABEL] if other else [])
            counts = [n for _, n in pairs] + ([other] if other else [])
            out[name] = TraitSummary(
                **common,
                distinct=int(stats[f"{i}_distinct"]),
                histogram=Histogram(kind="categorical", counts=tuple(counts), labels=tuple(labels)),
            )
        elif kind == "timestamp":
            out[name] = TraitSummary(
                **common, min=_iso(stats[f"{i}_min"]), max=_iso(stats[f"{i}_max"])
            )
        else:
            out[name] = TraitSummary(**common)
    return out


def summarize_trait(
    table: ir.Table, column: str, /, *, bins: int = 30, top: int = 20
) -> TraitSummary:
    """The :class:`TraitSummary` of one column."""
    return summarize(table, columns=[column], bins=bins, top=top)[column]


def summary_frame(
    summaries: Mapping[str, TraitSummary] | Iterable[TraitSummary], /
) -> pd.DataFrame:
    """One row per trait: kind, rows, nulls, null rate, distinct, min, quantiles, max, mean."""
    import pandas as pd

    items = summaries.values() if isinstance(summaries, Mapping) else summaries
    records = []
    for s in items:
        record = {
            "trait": s.name,
            "kind": s.kind,
            "dtype": s.dtype,
            "rows": s.rows,
            "nulls": s.nulls,
            "null_rate": s.null_rate,
            "non_finite": s.non_finite,
            "distinct": s.distinct,
            "min": s.min,
        }
        record.update({k: s.quantiles.get(k) for k in QUANTILES})
        record.update({"max": s.max, "mean": s.mean})
        records.append(record)
    columns = ["trait", "kind", "dtype", "rows", "nulls", "null_rate", "non_finite", "distinct"]
    columns += ["min", *QUANTILES, "max", "mean"]
    return pd.DataFrame.from_records(records, columns=columns)


def tier_sizes(
    table: ir.Table, column: str, /, *, labels: Sequence[Any] | None = None
) -> pd.DataFrame:
    """Rows per tier: columns ``tier``, ``count``, ``share`` (of all rows, nulls included).

    With ``labels`` (a derived trait's labels) tiers come in that order, empty ones with 0;
    values outside ``labels`` follow, then ``"(null)"`` when there are nulls.
    """
    import pandas as pd

    if column not in table.columns:
        from sqltraits_kit.errors import UnknownTableError

        raise UnknownTableError(
            f"column {column!r} is not in the table (columns: {', '.join(table.columns)})"
        )
    pairs, _ = _value_counts(table, column, top=None)
    counts = dict(pairs)
    total = int(table.count().execute())
    nulls = total - sum(counts.values())
    order = [str(x) for x in labels] if labels is not None else []
    numeric = table[column].type().is_numeric() and not table[column].type().is_boolean()
    rest = [k for k in counts if k not in order]
    order += sorted(rest, key=float) if numeric else sorted(rest)
    rows = [(tier, counts.get(tier, 0)) for tier in order]
    if nulls:
        rows.append((NULL_LABEL, nulls))
    frame = pd.DataFrame(rows, columns=["tier", "count"])
    frame["share"] = frame["count"] / total if total else 0.0
    return frame
