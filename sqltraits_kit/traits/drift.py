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
    report = compare_trait_set(current, baseline, trait_set)   # the gate's PSI, tiers, movers
    report = drift_gate(current, Baseline(snapshot, "published"), id_column="user_id")
    report.max_psi; report.over_threshold(0.2); report.to_dict()
    report.psi["churn_probability"].bins        # baseline vs current shares per bin
    report.transitions["churn_risk_tier"].to_frame()
    report.new_traits                            # traits the baseline does not have yet
    current, previous = split_runs(wh.table("churn_traits_history"))

The module is the face of the drift code: PSI in :mod:`.psi`, transitions, membership and top
movers in :mod:`.transitions`, :class:`DriftReport` and :func:`compare` in :mod:`.comparison`, and
the one gate (which traits, which rows) in :mod:`.gate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqltraits_kit.errors import DataError
from sqltraits_kit.traits.comparison import DriftReport, compare
from sqltraits_kit.traits.gate import Baseline, BaselineKind, compare_trait_set, drift_gate
from sqltraits_kit.traits.psi import (
    EPSILON,
    NULL_LABEL,
    PSIBin,
    TraitPSI,
    check_columns,
    population_stability,
)
from sqltraits_kit.traits.transitions import (
    ABSENT_LABEL,
    Membership,
    TransitionMatrix,
    membership,
    top_movers,
    transition_matrix,
)

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = [
    "ABSENT_LABEL",
    "EPSILON",
    "NULL_LABEL",
    "Baseline",
    "BaselineKind",
    "DriftReport",
    "Membership",
    "PSIBin",
    "TraitPSI",
    "TransitionMatrix",
    "compare",
    "compare_trait_set",
    "drift_gate",
    "membership",
    "population_stability",
    "split_runs",
    "top_movers",
    "transition_matrix",
]


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

    check_columns(history, [run_column, time_column], "history")
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
