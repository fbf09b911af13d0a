"""The gates of a publish: Segment's SQL-trait contract and drift against the published snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqltraits_kit.publishing.sync import runs as r
from sqltraits_kit.publishing.sync import state as s
from sqltraits_kit.publishing.sync.reports import Verdicts
from sqltraits_kit.publishing.sync.source import SourceLike, SyncSource, resolve_source
from sqltraits_kit.warehouse.sandbox import time_limited

if TYPE_CHECKING:
    from sqltraits_kit.warehouse import Warehouse

__all__ = ["check", "verdicts"]


@time_limited  # the contract and drift checks run the user's SQL: within the query budget
def verdicts(wh: Warehouse, src: SyncSource, *, destination: str | None = None) -> Verdicts:
    """Validate ``src`` and compare it with what was published before the run that would send it.

    Drift is the PSI of each numeric trait between the published snapshot and the current values
    *of the same profiles* (the current rows whose identifier Segment holds). Profiles entering
    or leaving are membership, reported by the dry run's counts, not drift: otherwise a publish
    that partly failed, or an unfinished run waiting to be resumed, would leave a partial
    snapshot that looks like drift and blocks the very run that completes it. For the same
    reason an unfinished run's own acknowledgements are left out of the baseline.

    ``destination``: the baseline is what that destination acknowledged; a destination with no
    state yet is compared with the destination most recently published to (the drift gate
    guards the model's output, wherever it goes).
    """
    from sqltraits_kit.traits.contract import validate
    from sqltraits_kit.traits.drift import compare

    report = validate(src.table, id_column=src.id_column, kind=src.contract_kind)
    if destination is not None and s.snapshot_table(wh, src.sync_key, destination) is None:
        destination = None
    resuming = r.unfinished_run(wh, src.sync_key, destination)
    snapshot = s.published_snapshot(
        wh, src.sync_key, destination=destination, excluding_run=resuming
    )
    drift, published = None, 0
    if snapshot is not None:
        published = int(snapshot.count().execute())
    if snapshot is not None and published and (report.rows or 0):
        cur, base = src.table.schema(), snapshot.schema()
        # As the Preview computes it (drift.compare_trait_set): derived traits (tiers, deciles,
        # flags) are judged by transitions there, not by PSI, so they do not gate either.
        derived = {d.name for d in src.trait_set.derived} if src.trait_set else set()
        numeric = [
            t
            for t in src.traits
            if t in base
            and t not in derived
            and cur[t].is_numeric()
            and not cur[t].is_boolean()
            and base[t].is_numeric()
            and not base[t].is_boolean()
        ]
        if numeric:
            ident = src.id_column
            held = src.table.filter(src.table[ident].isin(snapshot[ident]))
            drift = compare(
                held,
                snapshot,
                id_column=src.id_column,
                numeric=numeric,
                categorical=[],
                threshold=src.drift_threshold,
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
