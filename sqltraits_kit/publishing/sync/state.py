"""The sync state: what Segment holds for each profile, according to the acknowledgements we got.

One append-only table per sync key, ``sqltraits_state__<key>``: the identifier (named and typed
as in the source), one column per trait (typed as in the source, so the Preview can diff it
column by column), and three bookkeeping columns: ``_sync_removed`` (a tombstone: the profile
left the result and its traits were set to null), ``_sync_run_id`` and ``_sync_seq`` (a counter
that only grows; the latest row per identifier wins). A row is appended only after Segment
acknowledged the batch that carried it, so the latest non-tombstone row per identifier is the
**published snapshot**. ``sqltraits_sync_keys`` registers each key's table, identifier and kind.

Compaction rewrites a state table to one row per identifier (tombstones kept: they carry the
sequence number a later message id is derived from) once the log has grown by a quarter; the
rewrite is swapped in atomically (:func:`~sqltraits_kit.publishing.sync.tables.replace_table`).
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.publishing.sync.tables import (
    arrow_rows,
    ensure_table,
    insert,
    latest_per_key,
    replace_table,
    utc_now,
)
from sqltraits_kit.traits.traitset import TraitSet

if TYPE_CHECKING:
    import ibis.expr.schema as sch
    import ibis.expr.types as ir

    from sqltraits_kit.publishing.sync.source import SyncSource
    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "REGISTRY_TABLE",
    "published_keys",
    "published_snapshot",
    "state_table_name",
]

STATE_PREFIX = "sqltraits_state__"
PENDING_PREFIX = "sqltraits_pending__"
REGISTRY_TABLE = "sqltraits_sync_keys"
REMOVED, RUN_ID, SEQ = "_sync_removed", "_sync_run_id", "_sync_seq"
BOOKKEEPING = (REMOVED, RUN_ID, SEQ)


def _registry_schema() -> sch.Schema:
    import ibis

    return ibis.schema(
        {
            "sync_key": "string",
            "state_table": "string",
            "id_column": "string",
            "kind": "string",
            "traits": "string",  # comma-separated, for display
            "source": "string",
            "registered_at": "timestamp('UTC')",
        }
    )


def _safe(sync_key: str) -> str:
    # Lower snake_case (Snowflake folds case) plus a hash, so distinct keys never collide.
    base = re.sub(r"[^a-z0-9]+", "_", sync_key.lower()).strip("_")[:30] or "key"
    return f"{base}_{hashlib.sha256(sync_key.encode()).hexdigest()[:8]}"


def state_table_name(sync_key: str) -> str:
    """The state table of a sync key (at most 56 characters: fits PostgreSQL's 63)."""
    return STATE_PREFIX + _safe(sync_key)


def pending_table_name(sync_key: str) -> str:
    """The scratch table holding one run's rows to send, numbered."""
    return PENDING_PREFIX + _safe(sync_key)


def _key_of(sync_key: str | TraitSet) -> str:
    return sync_key.name if isinstance(sync_key, TraitSet) else sync_key


def registration(wh: Warehouse, sync_key: str) -> dict[str, Any] | None:
    """The latest registry row of ``sync_key``, or None."""
    if not wh.has_table(REGISTRY_TABLE):
        return None
    reg = wh.con.table(REGISTRY_TABLE)
    rows = (
        reg.filter(reg["sync_key"] == sync_key)
        .order_by(reg["registered_at"].desc())
        .limit(1)
        .to_pyarrow()
        .to_pylist()
    )
    return rows[0] if rows else None


def published_keys(wh: Warehouse) -> list[dict[str, Any]]:
    """Every registered sync key with its state table, identifier, kind and traits."""
    if not wh.has_table(REGISTRY_TABLE):
        return []
    reg = latest_per_key(wh.con.table(REGISTRY_TABLE), "sync_key", "registered_at")
    return reg.order_by("sync_key").to_pyarrow().to_pylist()


def state_schema(src: SyncSource) -> sch.Schema:
    import ibis

    schema = src.table.schema()
    return ibis.schema(
        {
            src.id_column: schema[src.id_column],
            **{t: schema[t] for t in src.traits},
            REMOVED: "boolean",
            RUN_ID: "string",
            SEQ: "int64",
        }
    )


def _numeric(dtype: Any) -> bool:
    return dtype.is_numeric() and not dtype.is_boolean()


def conform(table: ir.Table, src: SyncSource) -> ir.Table:
    """The state rows projected onto the source's current columns and types.

    A new trait is null (every profile then counts as changed and is re-sent); a trait the
    source no longer has is dropped; a numeric trait that changed numeric type is cast; any
    other type change makes the trait null, so the new values are sent (Segment would see
    ``"1"`` and ``1`` as different values). The identifier may only change to a string.
    """
    import ibis

    desired = state_schema(src)
    old = table.schema()
    if src.id_column not in old:
        raise ConfigError(
            f"sync key {src.sync_key!r} was published with another identifier "
            f"({', '.join(c for c in old.names if c not in BOOKKEEPING)[:80]}); publish under "
            "a new sync key (or drop the table "
            f"{state_table_name(src.sync_key)} to start from an empty state: every profile is "
            "then sent again)"
        )
    exprs: dict[str, Any] = {}
    for col, dtype in desired.items():
        if col in old and old[col] == dtype:
            exprs[col] = table[col]
        elif col == src.id_column:
            if not dtype.is_string():
                raise ConfigError(
                    f"the identifier {col!r} of sync key {src.sync_key!r} changed type from "
                    f"{old[col]} to {dtype}; cast it back, or publish under a new sync key"
                )
            exprs[col] = table[col].cast(dtype)
        elif col in old and _numeric(old[col]) and _numeric(dtype):
            exprs[col] = table[col].cast(dtype)
        else:
            exprs[col] = ibis.null(dtype)
    return table.select(**exprs)


def ensure_state(wh: Warehouse, src: SyncSource) -> str:
    """Create or migrate the state table of ``src`` and register it; returns its name."""
    name = state_table_name(src.sync_key)
    reg = registration(wh, src.sync_key)
    if reg is not None and reg["kind"] != src.kind:
        raise ConfigError(
            f"sync key {src.sync_key!r} was published with {reg['kind']} calls, not {src.kind}; "
            "use another sync key for the other kind"
        )
    desired = state_schema(src)
    if not wh.has_table(name):
        ensure_table(wh, name, desired)
    elif wh.con.table(name).schema() != desired:
        replace_table(wh, name, conform(wh.con.table(name), src))
    traits = ",".join(src.traits)
    if reg is None or reg["traits"] != traits or reg["id_column"] != src.id_column:
        ensure_table(wh, REGISTRY_TABLE, _registry_schema())
        row = {
            "sync_key": src.sync_key,
            "state_table": name,
            "id_column": src.id_column,
            "kind": src.kind,
            "traits": traits,
            "source": src.label,
            "registered_at": utc_now(),
        }
        insert(wh, REGISTRY_TABLE, arrow_rows(_registry_schema(), [row]))
    return name


def _id_column(table: ir.Table) -> str:
    # The identifier is the first column by construction (state_schema).
    return table.columns[0]


def latest_state(wh: Warehouse, name: str, *, excluding_run: str | None = None) -> ir.Table | None:
    """The latest row per identifier, tombstones included; None when there is no state yet.

    ``excluding_run`` leaves out what that run acknowledged: the state as it was before it.
    """
    if not wh.has_table(name):
        return None
    table = wh.con.table(name)
    if excluding_run is not None:
        table = table.filter(table[RUN_ID] != excluding_run)
    return latest_per_key(table, _id_column(table), SEQ)


def published_snapshot(
    wh: Warehouse, sync_key: str | TraitSet, /, *, excluding_run: str | None = None
) -> ir.Table | None:
    """What Segment holds for this sync key according to our acknowledgements.

    The identifier and one column per trait, one row per profile whose traits were published
    and not since set to null; None if nothing was ever published under this key. This is the
    baseline the Preview's drift comparison reads. ``excluding_run``: as it was before that run
    (the baseline of an unfinished run that is being resumed).
    """
    name = state_table_name(_key_of(sync_key))
    latest = latest_state(wh, name, excluding_run=excluding_run)
    if latest is None:
        return None
    keep = [c for c in latest.columns if c not in BOOKKEEPING]
    return latest.filter(~latest[REMOVED]).select(*keep)


def max_seq(wh: Warehouse, name: str) -> int:
    if not wh.has_table(name):
        return 0
    value = wh.con.table(name)[SEQ].max().execute()
    return 0 if value is None else int(value)


def compact(wh: Warehouse, name: str, *, slack: float = 0.25) -> bool:
    """Rewrite the state table to one row per identifier once the log grew by ``slack``.

    A crash before or during compaction is harmless: the rewrite is an atomic swap, and the
    log it replaces means the same thing.
    """
    if not wh.has_table(name):
        return False
    table = wh.con.table(name)
    ident = _id_column(table)
    row = table.aggregate(n=table.count(), k=table[ident].nunique()).to_pyarrow().to_pylist()[0]
    rows, ids = int(row["n"] or 0), int(row["k"] or 0)
    if rows - ids <= max(1_000, int(ids * slack)):
        return False
    replace_table(wh, name, latest_per_key(table, ident, SEQ))
    return True
