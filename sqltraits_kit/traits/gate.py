"""The drift gate: the one definition of which traits and which rows a drift figure judges.

The Preview's drift panel, the Publish page's checks, ``sqltraits sync`` and ``sqltraits run``
all take their PSI from :func:`drift_gate`, so one trait set shows one figure on every screen.

**Which traits.** The numeric traits of the current table (the ones named, or every column but
the identifier and the scoring metadata) that the baseline has too, numeric there as well.
Derived traits (tiers, deciles, flags) are judged by their transitions, not by PSI. A trait the
baseline lacks, or holds only nulls for, is **new** (:attr:`DriftReport.new_traits`) and gets
no PSI: a trait added since the baseline is null in the previous runs of the history table (and
in a state table a publish migrated), and an all-null baseline against real values is a PSI of
about 18.4 that says nothing about the model.

**Which rows.** Against the published snapshot (``kind="published"``), the current rows of the
profiles the snapshot holds: profiles entering or leaving are membership, not drift, and a
snapshot can be partial (a publish that partly failed, an unfinished run about to be resumed),
which must not read as drift and block the very run that completes it. Against a previous
scoring run (``kind="previous_run"``, complete by construction), every current row.

The baseline itself (the snapshot as it was before an unfinished run) is
:func:`sqltraits_kit.publishing.sync.checks.published_baseline`'s; the Preview falls back to the
previous run only while nothing is published, and says then that the Publish step does not gate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqltraits_kit.traits.comparison import DriftReport, shared_traits
from sqltraits_kit.traits.output import METADATA_COLUMNS
from sqltraits_kit.traits.psi import EPSILON, check_columns, is_missing, population_stability
from sqltraits_kit.traits.traitset import DEFAULT_DRIFT_THRESHOLD
from sqltraits_kit.traits.transitions import membership, top_movers, transition_matrix

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.traits.traitset import TraitSet

__all__ = [
    "BASELINE_NAMES",
    "Baseline",
    "BaselineKind",
    "compare_trait_set",
    "drift_gate",
    "gate_traits",
]

BaselineKind = Literal["published", "previous_run"]
#: How a sentence names each kind of baseline.
BASELINE_NAMES: dict[str, str] = {
    "published": "published snapshot",
    "previous_run": "previous run",
}


@dataclass(frozen=True)
class Baseline:
    """A table to measure drift against, what it is, and a label saying so."""

    table: ir.Table
    kind: BaselineKind = "previous_run"
    label: str = ""

    @property
    def gates_publish(self) -> bool:
        """Whether a publish is gated on drift against it (only the published snapshot is)."""
        return self.kind == "published"


def _as_baseline(baseline: Baseline | ir.Table) -> Baseline:
    return baseline if isinstance(baseline, Baseline) else Baseline(baseline)


def _has_values(table: ir.Table, names: Sequence[str]) -> dict[str, bool]:
    """Which of ``names`` hold at least one non-null (non-NaN) value; one aggregate."""
    if not names:
        return {}
    counts = {f"_n{i}": table[n].count(where=~is_missing(table[n])) for i, n in enumerate(names)}
    row = table.aggregate(**counts).to_pyarrow().to_pylist()[0]
    return {n: bool(row[f"_n{i}"]) for i, n in enumerate(names)}


def gate_traits(
    current: ir.Table,
    baseline: ir.Table,
    /,
    *,
    id_column: str,
    traits: Iterable[str] | None = None,
    derived: Iterable[str] = (),
) -> tuple[list[str], list[str]]:
    """(the traits judged by PSI, the traits new since the baseline), in column order.

    ``traits``: the candidates (default: every column of ``current`` but ``id_column`` and the
    scoring metadata); ``derived``: the derived traits, never given a PSI.
    """
    skip = {id_column, *METADATA_COLUMNS}
    candidates = [c for c in current.columns if c not in skip] if traits is None else list(traits)
    present = [t for t in candidates if t in baseline.columns]
    filled = _has_values(baseline, present)
    new = [t for t in candidates if not filled.get(t, False)]
    numeric, _ = shared_traits(current, baseline, id_column)
    excluded = set(derived) | set(new)
    judged = [t for t in numeric if t in set(candidates) - excluded]
    return judged, new


def drift_gate(
    current: ir.Table,
    baseline: Baseline | ir.Table,
    /,
    *,
    id_column: str,
    threshold: float = DEFAULT_DRIFT_THRESHOLD,
    traits: Iterable[str] | None = None,
    derived: Iterable[str] = (),
    bins: int = 10,
    epsilon: float = EPSILON,
) -> DriftReport:
    """PSI of the gated traits on the gated rows (module docstring), membership, new traits.

    A plain table as ``baseline`` is a previous run: every current row is compared.
    """
    base = _as_baseline(baseline)
    check_columns(current, [id_column], "current")
    check_columns(base.table, [id_column], "baseline")
    judged, new = gate_traits(
        current, base.table, id_column=id_column, traits=traits, derived=derived
    )
    rows = current
    if base.kind == "published":
        rows = current.filter(current[id_column].isin(base.table[id_column]))
    psi = {
        name: population_stability(rows, base.table, column=name, bins=bins, epsilon=epsilon)
        for name in judged
    }
    return DriftReport(
        id_column=id_column,
        threshold=threshold,
        membership=membership(current, base.table, id_column=id_column),
        psi=psi,
        new_traits=tuple(new),
    )


def _tier_labels(trait_set: TraitSet) -> dict[str, Sequence[Any]]:
    labels: dict[str, Sequence[Any]] = {}
    for d in trait_set.derived:
        if d.labels:
            labels[d.name] = d.labels
        elif d.type == "quantiles":
            labels[d.name] = list(range(1, d.bins + 1))
    return labels


def compare_trait_set(
    current: ir.Table,
    baseline: Baseline | ir.Table,
    trait_set: TraitSet,
    /,
    *,
    movers: str | None = None,
    n_movers: int = 20,
    bins: int = 10,
) -> DriftReport:
    """The Preview's drift panel: :func:`drift_gate` plus transitions and top movers.

    Both tables have the resolved shape (``resolve(wh, trait_set)`` now, and the published
    snapshot or the previous run resolved the same way). The PSI figures are the gate's; derived
    traits (tiers, deciles, flags) and string/boolean traits get transition matrices, derived
    ones in their label order; new traits get neither.
    """
    base = _as_baseline(baseline)
    id_column = trait_set.identifier
    derived = [d.name for d in trait_set.derived]
    report = drift_gate(
        current,
        base,
        id_column=id_column,
        threshold=trait_set.drift_threshold,
        derived=derived,
        bins=bins,
    )
    new = set(report.new_traits)
    _, categorical = shared_traits(current, base.table, id_column)
    categorical = [c for c in categorical if c not in derived]
    shared = [d for d in derived if d in current.columns and d in base.table.columns]
    labels = _tier_labels(trait_set)
    transitions = {
        name: transition_matrix(
            current, base.table, id_column=id_column, column=name, labels=labels.get(name)
        )
        for name in [*categorical, *shared]
        if name not in new
    }
    mover_frame = None
    if movers is not None:
        mover_frame = top_movers(
            current, base.table, id_column=id_column, column=movers, n=n_movers
        )
    return DriftReport(
        id_column=id_column,
        threshold=report.threshold,
        membership=report.membership,
        psi=report.psi,
        transitions=transitions,
        movers=mover_frame,
        movers_trait=movers,
        new_traits=report.new_traits,
    )
