"""Per-profile comparisons of two tables keyed by the identifier, computed in the warehouse.

**Transitions** per categorical trait: counts of (baseline value -> current value) over the
full outer join on the identifier; ``(absent)`` marks profiles on one side only, ``(null)``
null values. **Membership**: profiles entering, leaving and staying. **Top movers**: the rows
with the largest absolute change of one numeric trait.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import DataError
from sqltraits_kit.traits.psi import NULL_LABEL, check_columns, is_missing

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd

__all__ = [
    "ABSENT_LABEL",
    "Membership",
    "TransitionMatrix",
    "membership",
    "top_movers",
    "transition_matrix",
]

ABSENT_LABEL = "(absent)"


@dataclass(frozen=True)
class TransitionMatrix:
    """Counts of profiles by (baseline value, current value); rows = from, columns = to."""

    trait: str
    labels_from: tuple[str, ...]
    labels_to: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]

    def count(self, from_: str, to: str) -> int:
        return self.counts[self.labels_from.index(from_)][self.labels_to.index(to)]

    @property
    def changed(self) -> int:
        """Profiles present on both sides whose value changed."""
        return sum(
            n
            for i, a in enumerate(self.labels_from)
            for j, b in enumerate(self.labels_to)
            if (n := self.counts[i][j]) and a != b and ABSENT_LABEL not in (a, b)
        )

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        frame = pd.DataFrame(
            [list(row) for row in self.counts],
            index=pd.Index(self.labels_from, name="from"),
            columns=pd.Index(self.labels_to, name="to"),
        )
        return frame

    def to_dict(self) -> dict[str, Any]:
        cells = [
            {"from": a, "to": b, "count": self.counts[i][j]}
            for i, a in enumerate(self.labels_from)
            for j, b in enumerate(self.labels_to)
            if self.counts[i][j]
        ]
        return {
            "trait": self.trait,
            "labels_from": list(self.labels_from),
            "labels_to": list(self.labels_to),
            "counts": [list(r) for r in self.counts],
            "cells": cells,
            "changed": self.changed,
        }


@dataclass(frozen=True)
class Membership:
    """Profiles only in the current table (entering), only in the baseline (leaving), in both."""

    entering: int
    leaving: int
    staying: int

    def to_dict(self) -> dict[str, int]:
        return {"entering": self.entering, "leaving": self.leaving, "staying": self.staying}


def _keyed(current: ir.Table, baseline: ir.Table, id_column: str, column: str | None = None):
    """Full outer join of the two sides on the identifier, with unambiguous column names."""
    check_columns(current, [id_column, *([column] if column else [])], "current")
    check_columns(baseline, [id_column, *([column] if column else [])], "baseline")
    b_cols = {"_b_id": baseline[id_column]}
    c_cols = {"_c_id": current[id_column]}
    if column:
        b_cols["_b_value"] = baseline[column]
        c_cols["_c_value"] = current[column]
    b = baseline.select(**b_cols)
    c = current.select(**c_cols)
    return b, c


def membership(current: ir.Table, baseline: ir.Table, /, *, id_column: str) -> Membership:
    """How many profiles enter, leave and stay (identifiers assumed unique on each side)."""
    b, c = _keyed(current, baseline, id_column)
    j = b.join(c, b["_b_id"] == c["_c_id"], how="outer")
    row = (
        j.aggregate(
            entering=j.count(where=j["_b_id"].isnull()),
            leaving=j.count(where=j["_c_id"].isnull()),
            staying=j.count(where=j["_b_id"].notnull() & j["_c_id"].notnull()),
        )
        .to_pyarrow()
        .to_pylist()[0]
    )
    return Membership(int(row["entering"]), int(row["leaving"]), int(row["staying"]))


def _order(values: Iterable[str], preferred: Sequence[Any] | None, numeric: bool) -> list[str]:
    values = set(values)
    special = [x for x in (NULL_LABEL, ABSENT_LABEL) if x in values]
    values -= set(special)
    first = [str(x) for x in (preferred or ()) if str(x) in values]
    rest = [v for v in values if v not in first]
    rest.sort(key=(lambda v: (float(v), v)) if numeric else None)
    return first + rest + special


def transition_matrix(
    current: ir.Table,
    baseline: ir.Table,
    /,
    *,
    id_column: str,
    column: str,
    labels: Sequence[Any] | None = None,
) -> TransitionMatrix:
    """Counts of (baseline value -> current value) of ``column`` per profile.

    ``labels`` (e.g. a tier trait's labels) fixes the order of rows and columns; every label is
    shown even when empty, other values follow, then ``(null)`` and ``(absent)``.
    """
    import ibis

    b, c = _keyed(current, baseline, id_column, column)
    j = b.join(c, b["_b_id"] == c["_c_id"], how="outer")
    frm = ibis.ifelse(
        j["_b_id"].isnull(),
        ABSENT_LABEL,
        ibis.coalesce(j["_b_value"].cast("string"), NULL_LABEL),
    )
    to = ibis.ifelse(
        j["_c_id"].isnull(),
        ABSENT_LABEL,
        ibis.coalesce(j["_c_value"].cast("string"), NULL_LABEL),
    )
    rows = j.group_by(frm=frm, to=to).aggregate(n=ibis._.count()).to_pyarrow().to_pylist()
    cells = {(r["frm"], r["to"]): int(r["n"]) for r in rows}
    dtype = current[column].type()
    numeric = dtype.is_numeric() and not dtype.is_boolean()
    preferred = [str(x) for x in labels] if labels is not None else None
    seen_from = {a for a, _ in cells} | set(preferred or ())
    seen_to = {t for _, t in cells} | set(preferred or ())
    # an integer trait cast to string must not make "10" sort before "2"
    labels_from = _order(seen_from, preferred, numeric)
    labels_to = _order(seen_to, preferred, numeric)
    counts = tuple(tuple(cells.get((a, t), 0) for t in labels_to) for a in labels_from)
    return TransitionMatrix(column, tuple(labels_from), tuple(labels_to), counts)


def top_movers(
    current: ir.Table,
    baseline: ir.Table,
    /,
    *,
    id_column: str,
    column: str,
    n: int = 20,
) -> pd.DataFrame:
    """The ``n`` profiles whose ``column`` changed most (absolute), largest first.

    Columns: the identifier, ``baseline``, ``current``, ``change`` (current - baseline). Rows with a
    null or non-finite value on either side are left out, and so are profiles whose value did not
    change (a mover that did not move is no mover); ties are ordered by identifier.
    """
    import ibis

    b, c = _keyed(current, baseline, id_column, column)
    for side, table in (("current", current), ("baseline", baseline)):
        dtype = table[column].type()
        if not dtype.is_numeric() or dtype.is_boolean():
            raise DataError(f"top movers need a numeric trait; {column!r} is {dtype} in {side}")
    j = b.join(c, b["_b_id"] == c["_c_id"], how="inner")
    before, after = j["_b_value"].cast("float64"), j["_c_value"].cast("float64")
    change = after - before
    valid = (
        ~is_missing(j["_b_value"]) & ~is_missing(j["_c_value"]) & ~change.isinf() & (change != 0)
    )
    moved = (
        j.filter(valid)
        .select(_id=j["_c_id"], baseline=before, current=after, change=change)
        .order_by([ibis.desc(ibis._["change"].abs()), "_id"])
        .limit(n)
        .to_pandas()
    )
    return moved.rename(columns={"_id": id_column}).reset_index(drop=True)
