"""The Preview's drift panel: the one gate's figure against the baseline, judged against the
trait set's threshold, with transitions, membership and top movers."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqltraits_kit import formatting as fmt
from sqltraits_kit.errors import SqlTraitsError
from sqltraits_kit.traits.gate import BASELINE_NAMES, BaselineKind
from sqltraits_kit.traits.traitset import TraitSet, resolve
from sqltraits_kit.workflows.preview.panels import timed
from sqltraits_kit.workflows.preview.sources import baseline_of

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.traits.drift import DriftReport
    from sqltraits_kit.warehouse import Warehouse

__all__ = ["DriftCheck", "drift_check"]


@dataclass(frozen=True)
class DriftCheck:
    """Drift against the baseline, judged against the trait set's ``drift_threshold``.

    ``report`` is None without a baseline (``baseline_label`` says why) or when the comparison
    failed (``error`` says why).
    """

    trait_set: TraitSet
    report: DriftReport | None
    baseline_label: str
    baseline_kind: BaselineKind | None
    error: str | None = None
    seconds: float = 0.0

    @property
    def threshold(self) -> float:
        return float(self.trait_set.drift_threshold)

    @property
    def over_threshold(self) -> list[str]:
        """Traits whose PSI is above the threshold, largest first."""
        return self.report.over_threshold(self.threshold) if self.report else []

    @property
    def gates_publish(self) -> bool:
        """Whether the Publish step is gated on this figure (against the published snapshot)."""
        return self.baseline_kind == "published"

    @property
    def warning(self) -> str | None:
        """The warning the Publish step repeats; None when no trait drifted past the threshold."""
        hits = self.over_threshold
        if not hits or self.report is None:
            return None
        values = ", ".join(f"{t} {fmt.figure(self.report.psi[t].psi)}" for t in hits)
        against = BASELINE_NAMES.get(self.baseline_kind or "", "baseline")
        then = (
            "the Publish step asks for confirmation"
            if self.gates_publish
            else "nothing is published under this sync key yet, so the Publish step does not "
            "gate on it"
        )
        return (
            f"PSI above the drift threshold {self.threshold:g} for {values} (against the "
            f"{against}): check the model run before publishing; {then}"
        )

    @property
    def new_traits_note(self) -> str | None:
        """Traits the baseline does not have yet: no drift figure, they are new."""
        if self.report is None or not self.report.new_traits:
            return None
        against = BASELINE_NAMES.get(self.baseline_kind or "", "baseline")
        return f"New since the {against} (no drift figure): {', '.join(self.report.new_traits)}"

    @property
    def leaving_warning(self) -> str | None:
        """Profiles in the baseline but not in the table: what a publish does to them."""
        if self.report is None or not self.report.membership.leaving:
            return None
        n = self.report.membership.leaving
        if self.trait_set.on_remove == "null":
            return (
                f"{n:,} profiles are in the baseline but not in this table: publishing sets "
                "every trait of this set to null on them (Segment's rule; on_remove = 'keep' "
                "leaves them alone)"
            )
        return f"{n:,} profiles left the table; on_remove = 'keep' leaves their traits as they are"

    def with_threshold(self, threshold: float | None, /) -> DriftCheck:
        """The same comparison judged against another threshold (no warehouse query)."""
        if threshold is None or float(threshold) == self.threshold:
            return self
        report = self.report
        if report is not None:
            report = dataclasses.replace(report, threshold=float(threshold))
        ts = self.trait_set.with_(drift_threshold=float(threshold))
        return dataclasses.replace(self, trait_set=ts, report=report)

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": {"kind": self.baseline_kind, "label": self.baseline_label},
            "threshold": self.threshold,
            "over_threshold": self.over_threshold,
            "warning": self.warning,
            "leaving_warning": self.leaving_warning,
            "new_traits_note": self.new_traits_note,
            "gates_publish": self.gates_publish,
            "error": self.error,
            "report": self.report.to_dict() if self.report else None,
        }


def _movers_trait(current: ir.Table, base: ir.Table, trait_set: TraitSet, ident: str) -> str | None:
    derived = {d.name for d in trait_set.derived}
    for name in current.columns:
        if name == ident or name in derived or name not in base.columns:
            continue
        a, b = current[name].type(), base[name].type()
        if a.is_numeric() and not a.is_boolean() and b.is_numeric() and not b.is_boolean():
            return name
    return None


def drift_check(
    wh: Warehouse,
    trait_set: TraitSet,
    /,
    *,
    drift_threshold: float | None = None,
    movers: str | None = None,
    n_movers: int = 20,
    psi_bins: int = 10,
    sync_key: str | None = None,
) -> DriftCheck:
    """PSI, transitions, membership and top movers against :func:`baseline`.

    ``movers``: the numeric trait of the top-movers list (default: the first numeric column
    trait); ``drift_threshold`` overrides the trait set's; ``sync_key`` the published state to
    compare with (the Publish page's destination: see :func:`baseline_of`).
    """
    from sqltraits_kit.traits.drift import compare_trait_set

    started = time.perf_counter()
    if drift_threshold is not None:
        trait_set = trait_set.with_(drift_threshold=float(drift_threshold))
    base, label = baseline_of(wh, trait_set, sync_key=sync_key)
    if base is None:
        return DriftCheck(trait_set, None, label, None, seconds=timed(started))
    current = resolve(wh, trait_set)
    try:
        mover = movers or _movers_trait(current, base.table, trait_set, trait_set.identifier)
        report = compare_trait_set(
            current, base, trait_set, movers=mover, n_movers=n_movers, bins=psi_bins
        )
    except SqlTraitsError as exc:
        error = f"drift against the {label} could not be computed: {exc}"
        return DriftCheck(trait_set, None, label, base.kind, error, timed(started))
    return DriftCheck(trait_set, report, label, base.kind, None, timed(started))
