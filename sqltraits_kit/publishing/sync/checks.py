"""The gates of a publish: Segment's SQL-trait contract and drift against the published snapshot."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from sqltraits_kit.publishing.sync import runs as r
from sqltraits_kit.publishing.sync import state as s
from sqltraits_kit.publishing.sync.reports import Verdicts
from sqltraits_kit.publishing.sync.source import SourceLike, SyncSource, resolve_source
from sqltraits_kit.warehouse.sandbox import time_limited

if TYPE_CHECKING:
    from sqltraits_kit.traits.contract import ContractReport
    from sqltraits_kit.traits.gate import Baseline
    from sqltraits_kit.warehouse import Warehouse

__all__ = ["check", "published_baseline", "shared_validation", "verdicts"]

_SHARED: ContextVar[tuple[str, ContractReport] | None] = ContextVar(
    "sqltraits_shared_validation", default=None
)


@contextmanager
def shared_validation(sync_key: str, report: ContractReport, /) -> Iterator[None]:
    """Within the block, the gate of a publish under ``sync_key`` takes ``report`` as its
    validation instead of validating the same rows again: one validation per run.

    ``sqltraits run`` validates the trait set once, on the rows its scoring step is about to
    swap into the output table, and publishes those rows inside this block. The report is used
    only when it describes the source's identifier, kind and columns; otherwise the gate
    validates as usual.
    """
    token = _SHARED.set((sync_key, report))
    try:
        yield
    finally:
        _SHARED.reset(token)


def _validation(src: SyncSource) -> ContractReport:
    from sqltraits_kit.traits.contract import validate

    shared = _SHARED.get()
    if shared is not None:
        key, report = shared
        same = (report.id_column, report.kind, report.columns) == (
            src.id_column,
            src.contract_kind,
            (src.id_column, *src.traits),
        )
        if key == src.sync_key and same:
            return report
    return validate(src.table, id_column=src.id_column, kind=src.contract_kind)


def published_baseline(
    wh: Warehouse, sync_key: str, /, *, destination: str | None = None
) -> tuple[Baseline | None, int]:
    """The drift baseline of a publish under ``sync_key``, and how many profiles it holds.

    The published snapshot as it was before an unfinished run (the run a publish would resume:
    its own acknowledgements are not the baseline it is judged against); None when nothing was
    ever published. ``destination``: what that destination acknowledged, or, while it has no
    state yet (and without one), the destination most recently published to. The gate
    (:func:`verdicts`) and the Preview read it through here.
    """
    from sqltraits_kit.traits.gate import Baseline

    if destination is not None and s.snapshot_table(wh, sync_key, destination) is None:
        destination = None
    resuming = r.unfinished_run(wh, sync_key, destination)
    snapshot = s.published_snapshot(wh, sync_key, destination=destination, excluding_run=resuming)
    if snapshot is None:
        return None, 0
    published = int(snapshot.count().execute())
    label = f"published snapshot of {sync_key!r} ({published:,} profiles acknowledged by Segment)"
    return Baseline(snapshot, "published", label), published


@time_limited  # the contract and drift checks run the user's SQL: within the query budget
def verdicts(wh: Warehouse, src: SyncSource, *, destination: str | None = None) -> Verdicts:
    """Validate ``src`` and judge its drift with the one gate (:mod:`sqltraits_kit.traits.gate`)
    against :func:`published_baseline`: the traits and rows the Preview shows, the same figure.

    ``destination``: the baseline is what that destination acknowledged; a destination with no
    state yet is compared with the destination most recently published to (the drift gate
    guards the model's output, wherever it goes).
    """
    from sqltraits_kit.traits.gate import drift_gate

    report = _validation(src)
    baseline, published = published_baseline(wh, src.sync_key, destination=destination)
    drift = None
    if baseline is not None and published and (report.rows or 0):
        drift = drift_gate(
            src.table,
            baseline,
            id_column=src.id_column,
            threshold=src.drift_threshold,
            traits=src.traits,
            derived=[d.name for d in src.trait_set.derived] if src.trait_set else (),
        )
    return Verdicts(report, drift, src.drift_threshold, published)


def check(
    wh: Warehouse,
    source: SourceLike,
    /,
    *,
    kind: str | None = None,
    id_column: str | None = None,
    on_remove: str | None = None,
    sync_key: str | None = None,
) -> Verdicts:
    """The validation and drift verdicts a publish of ``source`` would be gated on."""
    src = resolve_source(
        wh, source, kind=kind, id_column=id_column, on_remove=on_remove, sync_key=sync_key
    )
    return verdicts(wh, src)
