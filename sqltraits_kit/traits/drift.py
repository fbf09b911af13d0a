"""Drift between the table about to be published and a baseline, computed in the warehouse.

The baseline is the last published snapshot (the sync state) or the previous scoring run
(:func:`split_runs` on the output history table); both are Ibis tables in the same warehouse,
keyed by the identifier. Only counts per bin / per tier pair and the top movers leave it.

**PSI** (population stability index) per numeric trait::

    PSI = sum_i (c_i - b_i) * ln(c_i / b_i)

where ``b_i`` and ``c_i`` are the shares of baseline and current rows in bin ``i``. Bins are cut
at the baseline's quantiles ``k / bins`` (deciles by default; ``quantile`` = linear
interpolation, like numpy's default), left-closed: bin ``i`` holds ``cut_i <= x < cut_i+1``,
the first bin everything below the first cut and the last everything from the last cut up.
Tied cut points are merged (a zero-inflated trait gets fewer bins). Nulls and NaN form one
extra ``(null)`` bin when either side has any, so a score that turns null counts as drift. An
empty bin's share is replaced by ``epsilon`` (1e-4) so the logarithm stays finite; shares are
not renormalised. Rule of thumb: < 0.1 stable, 0.1–0.2 moderate, > 0.2 (the trait set's
``drift_threshold``) a real shift.

**Transitions** per categorical trait: counts of (baseline value -> current value) over the
full outer join on the identifier; ``(absent)`` marks profiles on one side only, ``(null)``
null values. **Membership**: profiles entering, leaving (Segment sets their traits to null
unless ``on_remove = "keep"``) and staying. **Top movers**: the rows with the largest absolute
change of one numeric trait.

API (one call for the Preview page's drift panel; figures in :mod:`sqltraits_kit.traits.charts`)::

    report = compare(current, baseline, id_column="user_id", movers="churn_probability")
    report = compare_trait_set(current, baseline, trait_set)   # ids, tier labels, threshold
    report.max_psi; report.over_threshold(0.2); report.to_dict()
    report.psi["churn_probability"].bins        # baseline vs current shares per bin
    report.transitions["churn_risk_tier"].to_frame()
    current, previous = split_runs(wh.table("churn_traits_history"))
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import DataError, UnknownTableError
from sqltraits_kit.traits.traitset import DEFAULT_DRIFT_THRESHOLD, METADATA_COLUMNS

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd

    from sqltraits_kit.traits.traitset import TraitSet

__all__ = [
    "ABSENT_LABEL",
    "EPSILON",
    "NULL_LABEL",
    "DriftReport",
    "Membership",
    "PSIBin",
    "TraitPSI",
    "TransitionMatrix",
    "compare",
    "compare_trait_set",
    "membership",
    "population_stability",
    "split_runs",
    "top_movers",
    "transition_matrix",
]

EPSILON = 1e-4
NULL_LABEL = "(null)"
ABSENT_LABEL = "(absent)"
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


@dataclass(frozen=True)
class DriftReport:
    """Everything :func:`compare` found; :meth:`to_dict` is JSON-able."""

    id_column: str
    threshold: float
    membership: Membership
    psi: Mapping[str, TraitPSI] = field(default_factory=dict)
    transitions: Mapping[str, TransitionMatrix] = field(default_factory=dict)
    movers: pd.DataFrame | None = None
    movers_trait: str | None = None

    @property
    def max_psi(self) -> float | None:
        values = [p.psi for p in self.psi.values() if p.psi is not None]
        return max(values) if values else None

    def over_threshold(self, threshold: float | None = None) -> list[str]:
        """Traits whose PSI exceeds ``threshold`` (default: the report's), largest first."""
        limit = self.threshold if threshold is None else threshold
        hits = [(p.psi, t) for t, p in self.psi.items() if p.psi is not None and p.psi > limit]
        return [t for _, t in sorted(hits, key=lambda x: (-x[0], x[1]))]

    def to_dict(self) -> dict[str, Any]:
        movers = None
        if self.movers is not None:
            movers = [
                {k: _plain(v) for k, v in row.items()}
                for row in self.movers.to_dict(orient="records")
            ]
        return {
            "id_column": self.id_column,
            "threshold": self.threshold,
            "max_psi": self.max_psi,
            "over_threshold": self.over_threshold(),
            "membership": self.membership.to_dict(),
            "psi": {t: p.to_dict() for t, p in self.psi.items()},
            "transitions": {t: m.to_dict() for t, m in self.transitions.items()},
            "movers_trait": self.movers_trait,
            "movers": movers,
        }


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _check_columns(table: ir.Table, names: Iterable[str], what: str) -> None:
    for name in names:
        if name not in table.columns:
            raise UnknownTableError(
                f"column {name!r} is not in the {what} table (columns: {', '.join(table.columns)})"
            )


def _missing(col: ir.Value) -> ir.BooleanValue:
    return col.isnull() | col.isnan() if col.type().is_floating() else col.isnull()


# --------------------------------------------------------------------------- PSI


def _cuts(baseline: ir.Table, column: str, bins: int) -> list[float]:
    col = baseline[column].cast("float64")
    probs = [k / bins for k in range(1, bins)]
    valid = ~_missing(baseline[column])
    value = baseline.aggregate(q=col.quantile(probs, where=valid)).to_pyarrow().to_pylist()[0]["q"]
    if value is None:
        return []
    # finite cuts only: an infinite quantile would make an empty, unlabelled bin
    return sorted({float(v) for v in value if v is not None and math.isfinite(float(v))})


def _bin_counts(table: ir.Table, column: str, cuts: Sequence[float]) -> tuple[dict[int, int], int]:
    import ibis

    col = table[column].cast("float64")
    branches = [(_missing(table[column]), _NULL_BIN)]
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
    _check_columns(current, [column], "current")
    _check_columns(baseline, [column], "baseline")
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


# --------------------------------------------------------------------------- joins


def _keyed(current: ir.Table, baseline: ir.Table, id_column: str, column: str | None = None):
    """Full outer join of the two sides on the identifier, with unambiguous column names."""
    _check_columns(current, [id_column, *([column] if column else [])], "current")
    _check_columns(baseline, [id_column, *([column] if column else [])], "baseline")
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
    null or non-finite value on either side are left out; ties are ordered by identifier.
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
    valid = ~_missing(j["_b_value"]) & ~_missing(j["_c_value"]) & ~change.isinf()
    moved = (
        j.filter(valid)
        .select(_id=j["_c_id"], baseline=before, current=after, change=change)
        .order_by([ibis.desc(ibis._["change"].abs()), "_id"])
        .limit(n)
        .to_pandas()
    )
    return moved.rename(columns={"_id": id_column}).reset_index(drop=True)


# --------------------------------------------------------------------------- compare


def _default_traits(current: ir.Table, baseline: ir.Table, id_column: str) -> tuple[list, list]:
    numeric, categorical = [], []
    skip = {id_column, *METADATA_COLUMNS}
    for name in current.columns:
        if name in skip or name not in baseline.columns:
            continue
        a, b = current[name].type(), baseline[name].type()
        if a.is_numeric() and not a.is_boolean() and b.is_numeric() and not b.is_boolean():
            numeric.append(name)
        elif (a.is_string() or a.is_boolean()) and (b.is_string() or b.is_boolean()):
            categorical.append(name)
    return numeric, categorical


def compare(
    current: ir.Table,
    baseline: ir.Table,
    /,
    *,
    id_column: str,
    numeric: Iterable[str] | None = None,
    categorical: Iterable[str] | None = None,
    movers: str | None = None,
    n_movers: int = 20,
    bins: int = 10,
    epsilon: float = EPSILON,
    threshold: float = DEFAULT_DRIFT_THRESHOLD,
    labels: Mapping[str, Sequence[Any]] | None = None,
) -> DriftReport:
    """PSI per numeric trait, transitions per categorical trait, membership and top movers.

    By default every numeric column both tables share is a PSI trait and every string/boolean
    column a transition trait (the identifier and scoring metadata excluded). ``movers`` names
    the numeric trait for the top-movers list (none by default). ``labels`` maps a categorical
    trait to its tier labels, for row/column order.
    """
    _check_columns(current, [id_column], "current")
    _check_columns(baseline, [id_column], "baseline")
    default_num, default_cat = _default_traits(current, baseline, id_column)
    numeric = default_num if numeric is None else list(numeric)
    categorical = default_cat if categorical is None else list(categorical)
    labels = labels or {}
    psi = {
        name: population_stability(current, baseline, column=name, bins=bins, epsilon=epsilon)
        for name in numeric
    }
    transitions = {
        name: transition_matrix(
            current, baseline, id_column=id_column, column=name, labels=labels.get(name)
        )
        for name in categorical
    }
    mover_frame = None
    if movers is not None:
        mover_frame = top_movers(current, baseline, id_column=id_column, column=movers, n=n_movers)
    return DriftReport(
        id_column=id_column,
        threshold=threshold,
        membership=membership(current, baseline, id_column=id_column),
        psi=psi,
        transitions=transitions,
        movers=mover_frame,
        movers_trait=movers,
    )


def compare_trait_set(
    current: ir.Table,
    baseline: ir.Table,
    trait_set: TraitSet,
    /,
    *,
    movers: str | None = None,
    n_movers: int = 20,
    bins: int = 10,
) -> DriftReport:
    """:func:`compare` with what a trait set knows: identifier, tier labels, drift threshold.

    Both tables have the resolved shape (``resolve(wh, trait_set)`` now, and the snapshot last
    published or the previous run resolved the same way). Derived traits (tiers, deciles,
    flags) get transition matrices in their label order; the other numeric traits get PSI.
    """
    id_column = trait_set.identifier
    _check_columns(current, [id_column], "current")
    _check_columns(baseline, [id_column], "baseline")
    numeric, categorical = _default_traits(current, baseline, id_column)
    derived = [d.name for d in trait_set.derived if d.name in current.columns]
    derived = [name for name in derived if name in baseline.columns]
    labels: dict[str, Sequence[Any]] = {}
    for d in trait_set.derived:
        if d.labels:
            labels[d.name] = d.labels
        elif d.type == "quantiles":
            labels[d.name] = list(range(1, d.bins + 1))
    return compare(
        current,
        baseline,
        id_column=id_column,
        numeric=[n for n in numeric if n not in derived],
        categorical=[*[c for c in categorical if c not in derived], *derived],
        movers=movers,
        n_movers=n_movers,
        bins=bins,
        threshold=trait_set.drift_threshold,
        labels=labels,
    )


def split_runs(
    history: ir.Table,
    /,
    *,
    run_column: str = "run_id",
    time_column: str = "scored_at",
    run_id: str | None = None,
) -> tuple[ir.Table, ir.Table | None]:
    """(the run ``run_id`` — default the latest —, the run before it or None) from a history table.

    Runs are ordered by their latest ``time_column``. Only the two run ids leave the warehouse.
    """
    import ibis

    _check_columns(history, [run_column, time_column], "history")
    runs = (
        history.group_by(_run=history[run_column])
        .aggregate(_at=history[time_column].max())
        .order_by([ibis.desc("_at"), ibis.desc("_run")])
        .to_pyarrow()
        .to_pylist()
    )
    ids = [r["_run"] for r in runs]
    if not ids:
        raise DataError("the history table has no runs")
    if run_id is None:
        position = 0
    elif run_id in ids:
        position = ids.index(run_id)
    else:
        raise DataError(
            f"run {run_id!r} is not in the history (latest: {', '.join(map(str, ids[:5]))})"
        )
    current = history.filter(history[run_column] == ids[position])
    if position + 1 >= len(ids):
        return current, None
    return current, history.filter(history[run_column] == ids[position + 1])
