"""PSI (population stability index) of one numeric trait between a baseline and the current table.

The definition (the module :mod:`sqltraits_kit.traits.drift` explains it in full)::

    PSI = sum_i (c_i - b_i) * ln(c_i / b_i)

over bins cut at the baseline's quantiles, left-closed, with one ``(null)`` bin for nulls and
NaN and ``epsilon`` standing in for an empty bin's share. Only counts per bin leave the warehouse.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import DataError, UnknownTableError

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = [
    "EPSILON",
    "NULL_LABEL",
    "PSIBin",
    "TraitPSI",
    "check_columns",
    "is_missing",
    "population_stability",
]

EPSILON = 1e-4
NULL_LABEL = "(null)"
_NULL_BIN = -1


@dataclass(frozen=True)
class PSIBin:
    """One PSI bin: ``lower <= x < upper`` (None = unbounded); ``label`` for charts."""

    label: str
    lower: float | None
    upper: float | None
    baseline: int
    current: int
    baseline_share: float
    current_share: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class TraitPSI:
    """PSI of one trait and the bins it was computed from (``psi`` None: no baseline values)."""

    trait: str
    psi: float | None
    bins: tuple[PSIBin, ...]
    baseline_rows: int
    current_rows: int
    epsilon: float = EPSILON

    def to_dict(self) -> dict[str, Any]:
        return {
            "trait": self.trait,
            "psi": self.psi,
            "baseline_rows": self.baseline_rows,
            "current_rows": self.current_rows,
            "epsilon": self.epsilon,
            "bins": [b.to_dict() for b in self.bins],
        }


def check_columns(table: ir.Table, names: Iterable[str], what: str) -> None:
    """Raise :class:`UnknownTableError` naming the first of ``names`` not in ``table``."""
    for name in names:
        if name not in table.columns:
            raise UnknownTableError(
                f"column {name!r} is not in the {what} table (columns: {', '.join(table.columns)})"
            )


def is_missing(col: ir.Value) -> ir.BooleanValue:
    """Null, or NaN for a floating column: what the ``(null)`` bin holds."""
    return col.isnull() | col.isnan() if col.type().is_floating() else col.isnull()


def _cuts(baseline: ir.Table, column: str, bins: int) -> list[float]:
    col = baseline[column].cast("float64")
    probs = [k / bins for k in range(1, bins)]
    valid = ~is_missing(baseline[column])
    value = baseline.aggregate(q=col.quantile(probs, where=valid)).to_pyarrow().to_pylist()[0]["q"]
    if value is None:
        return []
    # finite cuts only: an infinite quantile would make an empty, unlabelled bin
    return sorted({float(v) for v in value if v is not None and math.isfinite(float(v))})


def _bin_counts(table: ir.Table, column: str, cuts: Sequence[float]) -> tuple[dict[int, int], int]:
    import ibis

    col = table[column].cast("float64")
    branches = [(is_missing(table[column]), _NULL_BIN)]
    branches += [(col >= cut, i + 1) for i, cut in reversed(list(enumerate(cuts)))]
    index = ibis.cases(*branches, else_=0)
    rows = table.group_by(bin=index).aggregate(n=ibis._.count()).to_pyarrow().to_pylist()
    counts = {int(r["bin"]): int(r["n"]) for r in rows}
    return counts, sum(counts.values())


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def population_stability(
    current: ir.Table,
    baseline: ir.Table,
    /,
    *,
    column: str,
    bins: int = 10,
    epsilon: float = EPSILON,
) -> TraitPSI:
    """PSI of ``column`` between ``current`` and ``baseline`` (see the module docstring)."""
    if bins < 2:
        raise ValueError("bins must be at least 2")
    if not epsilon > 0:
        raise ValueError("epsilon must be > 0")
    check_columns(current, [column], "current")
    check_columns(baseline, [column], "baseline")
    for side, table in (("current", current), ("baseline", baseline)):
        dtype = table[column].type()
        if not dtype.is_numeric() or dtype.is_boolean():
            raise DataError(f"PSI needs a numeric trait; {column!r} is {dtype} in the {side} table")
    cuts = _cuts(baseline, column, bins)
    base_counts, base_rows = _bin_counts(baseline, column, cuts)
    cur_counts, cur_rows = _bin_counts(current, column, cuts)
    if base_rows == 0 or cur_rows == 0:
        return TraitPSI(column, None, (), base_rows, cur_rows, epsilon)
    edges: list[float | None] = [None, *cuts, None]
    indexes = list(range(len(cuts) + 1))
    if base_counts.get(_NULL_BIN) or cur_counts.get(_NULL_BIN):
        indexes.append(_NULL_BIN)
    out, psi = [], 0.0
    for i in indexes:
        b, c = base_counts.get(i, 0), cur_counts.get(i, 0)
        b_share, c_share = b / base_rows, c / cur_rows
        pb, pc = max(b_share, epsilon), max(c_share, epsilon)
        psi += (pc - pb) * math.log(pc / pb)
        if i == _NULL_BIN:
            label, lower, upper = NULL_LABEL, None, None
        else:
            lower, upper = edges[i], edges[i + 1]
            if lower is None and upper is None:
                label = "all values"
            elif lower is None:
                label = f"< {_fmt(upper)}"
            elif upper is None:
                label = f">= {_fmt(lower)}"
            else:
                label = f"[{_fmt(lower)}, {_fmt(upper)})"
        out.append(PSIBin(label, lower, upper, b, c, b_share, c_share))
    return TraitPSI(column, psi, tuple(out), base_rows, cur_rows, epsilon)
