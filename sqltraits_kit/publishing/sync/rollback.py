"""Rollback of a publish: re-publish what a destination held after an earlier run.

One call, the same road as any publish::

    rollback(wh, trait_set, "20261101T120000Z_3f9a1c2b", client=client)      # or dry_run=True

The earlier version is read back from the ledger (:func:`.versions.snapshot_at`: the values
Segment acknowledged up to that run) and handed to :func:`~.engine.sync` as the source, under
the same sync key and destination. So the gates judge it (contract, drift against what Segment
holds now), a dry run shows what it would send, and the diff against the ledger sends only the
profiles whose values differ from the earlier version: changed ones get the earlier values,
profiles published since get null traits (they were not in that version), profiles set to null
since get their values back. Every trait is compared exactly (no tolerance): afterwards the
destination holds exactly the earlier version. The run history shows the run's source as
``rollback of run X``, and the run carries the scores X carried (:mod:`.provenance`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.publishing.sync import runs as r
from sqltraits_kit.publishing.sync import state as s
from sqltraits_kit.publishing.sync.destination import client_destination
from sqltraits_kit.publishing.sync.dryrun import dry_run as _dry_run
from sqltraits_kit.publishing.sync.engine import sync
from sqltraits_kit.publishing.sync.source import SyncSource, _id_type
from sqltraits_kit.publishing.sync.versions import run_record, snapshot_at
from sqltraits_kit.traits.traitset import DEFAULT_DRIFT_THRESHOLD, TraitSet

if TYPE_CHECKING:
    from sqltraits_kit.publishing.segment.client import SegmentClient
    from sqltraits_kit.publishing.sync.reports import DryRunReport, SyncResult
    from sqltraits_kit.warehouse import Warehouse

__all__ = ["ROLLBACK_LABEL", "rollback", "rollback_source"]

#: The source label a rollback run records in the history: "rollback of run <run id>".
ROLLBACK_LABEL = "rollback of run {run_id}"


def _key(source: str | TraitSet, sync_key: str | None) -> tuple[str, TraitSet | None]:
    ts = source if isinstance(source, TraitSet) else None
    if sync_key is not None:
        return sync_key, ts
    if ts is not None:
        return ts.name, ts
    if not isinstance(source, str) or not source.strip():
        raise ConfigError("name the trait set or the sync key to roll back")
    return source, None


def rollback_source(
    wh: Warehouse,
    source: str | TraitSet,
    run_id: str,
    /,
    *,
    sync_key: str | None = None,
    destination: str | None = None,
    on_remove: str = "null",
) -> SyncSource:
    """The version published by run ``run_id`` as a source to publish again.

    ``source``: the trait set (its drift threshold and derived traits are the gate's) or the
    sync key; ``sync_key`` overrides the trait set's name (a destination's own key, such as
    ``churn@staging``). ``destination``: the destination being rolled back, which must be the
    run's. ``on_remove="null"`` (the default) sets the traits of profiles that were not in the
    earlier version to null, so the destination holds exactly that version.
    """
    key, ts = _key(source, sync_key)
    run = run_record(wh, key, run_id)
    dest = destination or run["destination"]
    if dest is None:
        raise ConfigError(f"run {run_id} of {key!r} predates destination records: no rollback")
    unfinished = r.unfinished_run(wh, key, dest)
    if unfinished is not None:
        raise ConfigError(
            f"run {unfinished} of {key!r} did not finish: publish again first (it resumes that "
            "run), then roll back"
        )
    table = snapshot_at(wh, key, run_id, destination=dest)
    reg = s.registration(wh, key, dest)
    if reg is None:
        raise ConfigError(f"sync key {key!r} is not registered at the destination of run {run_id}")
    ident = table.columns[0]
    kind = reg["kind"]
    return SyncSource(
        table=table,
        id_column=ident,
        traits=tuple(c for c in table.columns if c != ident),
        kind=kind,
        id_type=_id_type(kind, ident),
        sync_key=key,
        label=ROLLBACK_LABEL.format(run_id=run_id),
        on_remove="keep" if on_remove == "keep" else "null",
        drift_threshold=float(ts.drift_threshold) if ts else DEFAULT_DRIFT_THRESHOLD,
        trait_set=ts,
        rollback_of=run_id,
    )


def rollback(
    wh: Warehouse,
    source: str | TraitSet,
    run_id: str,
    /,
    *,
    client: SegmentClient | None = None,
    sync_key: str | None = None,
    destination: str | None = None,
    dry_run: bool = False,
    on_remove: str = "null",
    allow_drift: bool = False,
    allow_invalid: bool = False,
    **options: Any,
) -> SyncResult | DryRunReport:
    """Re-publish the version run ``run_id`` left at its destination, through :func:`sync`.

    ``client``: the destination's client (it must be the run's destination). ``dry_run=True``
    needs no client and returns the dry run's report: what the rollback would send.
    ``options`` go to :func:`sync` (``batch_size``, ``progress``, ``wait``, ``max_duration``...).
    Refused like any publish by the gates (``allow_drift``, ``allow_invalid`` override them).
    """
    if on_remove not in ("null", "keep"):
        raise ConfigError(f"on_remove must be 'null' or 'keep', got {on_remove!r}")
    if client is not None:
        destination = client_destination(client)
    src = rollback_source(
        wh, source, run_id, sync_key=sync_key, destination=destination, on_remove=on_remove
    )
    if dry_run:
        allowed = {"batch_size", "page_rows", "max_requests_per_second", "max_events_per_second"}
        dest = destination or run_record(wh, src.sync_key, run_id)["destination"]
        return _dry_run(
            wh, src, destination=dest, **{k: v for k, v in options.items() if k in allowed}
        )
    if client is None:
        raise ConfigError("a rollback publishes: it needs a SegmentClient, or dry_run=True")
    return sync(
        wh, src, client=client, allow_drift=allow_drift, allow_invalid=allow_invalid, **options
    )
