"""Drift between two tables keyed by the identifier: the report and :func:`compare`.

:func:`compare` takes the traits it is told (by default every shared column, by type). Which
traits and rows a *gate* judges is :mod:`sqltraits_kit.traits.gate`'s rule, not this module's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqltraits_kit.traits.output import METADATA_COLUMNS
from sqltraits_kit.traits.psi import EPSILON, TraitPSI, check_columns, population_stability
from sqltraits_kit.traits.traitset import DEFAULT_DRIFT_THRESHOLD
from sqltraits_kit.traits.transitions import (
    Membership,
    TransitionMatrix,
    membership,
    top_movers,
    transition_matrix,
)

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd

__all__ = ["DriftReport", "compare", "shared_traits"]


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
    #: traits the baseline lacks or holds only nulls for: new since, given no PSI
    new_traits: tuple[str, ...] = ()

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
            "new_traits": list(self.new_traits),
        }


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def shared_traits(
    current: ir.Table, baseline: ir.Table, id_column: str
) -> tuple[list[str], list[str]]:
    """(numeric, categorical) columns of ``current`` that ``baseline`` has with a like type.

    The identifier and the scoring metadata are left out; booleans count as categorical.
    """
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
    check_columns(current, [id_column], "current")
    check_columns(baseline, [id_column], "baseline")
    default_num, default_cat = shared_traits(current, baseline, id_column)
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
