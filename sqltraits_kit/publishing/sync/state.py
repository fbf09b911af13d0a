"""The sync state: a ledger of what Segment holds, or may hold, for each profile.

One append-only table per sync key and destination (``sqltraits_state__<key>``, see
:mod:`.destination`): the identifier (named and typed as in the source), one column per trait
(typed as in the source, so the Preview can diff it column by column), and the bookkeeping
columns ``_sync_removed`` (the row set the traits to null: the profile left the result),
``_sync_delivered``, ``_sync_base``, ``_sync_run_id`` and ``_sync_seq`` (a counter that only
grows; the latest row per identifier is the profile's current ledger entry).

The ledger (states and transitions in ``docs/DELIVERY.md``):

- **in flight / unknown** (``_sync_delivered = false``): appended for every row a run will send
  *before* its first message goes out (one INSERT ... SELECT from the numbered rows to send, in
  the warehouse), with the values sent and ``_sync_base``, the ledger sequence number
  the message's id was derived from: the messageId is a hash of the sync key and destination,
  ``_sync_base``, the identifier and the values (:mod:`.messages`), so the ledger row determines
  it. Until an answer proves delivery, Segment may hold these values or the ones before them.
- **delivered** (``_sync_delivered = true``): appended once Segment's success answer came back
  for the batch that carried the row (an INSERT ... SELECT of the acknowledged row numbers).

A crash, a timeout, exhausted retries or an error answer leave the row *unknown*; the next
diff re-sends the current value of every unknown profile (under the same messageId when it is
the value that was in flight, so Segment drops the duplicate, and under a new one otherwise).
The latest *delivered* non-removed row per identifier is the **published snapshot**, the
Preview's drift baseline. ``sqltraits_sync_keys`` registers each key's state table per
destination.

Compaction rewrites a state table to the latest row per identifier and delivery status (the
latest delivered row is kept beside a later unknown one: it is the snapshot) once the log has
grown by a quarter; the rewrite is swapped in atomically
(:func:`~sqltraits_kit.publishing.sync.tables.replace_table`). The delivered rows it leaves out
are appended first to the state's archive (``sqltraits_statelog__<key>``), so what a destination
held after any run can still be read back (:mod:`.versions`: a rollback re-publishes it). An
engine without transactional DDL (Spark) keeps the whole log: the latest row per identifier is a
window over it either way.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.publishing.sync.tables import (
    arrow_rows,
    can_rewrite,
    ensure_table,
    insert,
    latest_per_key,
    replace_table,
    utc_now,
    utc_rows,
)
from sqltraits_kit.traits.traitset import TraitSet

if TYPE_CHECKING:
    import ibis.expr.schema as sch
    import ibis.expr.types as ir

    from sqltraits_kit.publishing.sync.source import SyncSource
    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "REGISTRY_TABLE",
    "destinations",
    "published_keys",
    "published_snapshot",
    "published_version",
    "state_table_name",
]

STATE_PREFIX = "sqltraits_state__"
#: The archive of a state table: the delivered rows compaction left out (same suffix).
LOG_PREFIX = "sqltraits_statelog__"
PENDING_PREFIX = "sqltraits_pending__"
REGISTRY_TABLE = "sqltraits_sync_keys"
REMOVED, RUN_ID, SEQ = "_sync_removed", "_sync_run_id", "_sync_seq"
DELIVERED, BASE = "_sync_delivered", "_sync_base"
BOOKKEEPING = (REMOVED, DELIVERED, BASE, RUN_ID, SEQ)


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
            "destination": "string",  # null: a state from before destinations were recorded
        }
    )


def _readable(sync_key: str) -> str:
    """The readable part of a table name: lower snake_case (Snowflake folds case), 30 at most."""
    return re.sub(r"[^a-z0-9]+", "_", sync_key.lower()).strip("_")[:30] or "key"


def _safe(sync_key: str) -> str:
    # plus a hash, so distinct keys never collide
    return f"{_readable(sync_key)}_{hashlib.sha256(sync_key.encode()).hexdigest()[:8]}"


def state_table_name(sync_key: str, destination: str | None = None) -> str:
    """The state table of a sync key at a destination (at most 56 characters: fits PostgreSQL's
    63). Without a destination: the table of a state written before destinations were recorded.
    """
    if destination is None:
        return STATE_PREFIX + _safe(sync_key)
    return STATE_PREFIX + _safe_pair(sync_key, destination)


def _safe_pair(sync_key: str, destination: str) -> str:
    digest = hashlib.sha256(f"{sync_key}\x00{destination}".encode()).hexdigest()[:8]
    return f"{_readable(sync_key)}_{digest}"


def log_table_name(state_table: str) -> str:
    """The archive of ``state_table``: the delivered rows its compactions left out."""
    return LOG_PREFIX + state_table.removeprefix(STATE_PREFIX)


def pending_table_name(sync_key: str, destination: str | None = None) -> str:
    """The scratch table holding one run's rows to send, numbered."""
    if destination is None:
        return PENDING_PREFIX + _safe(sync_key)
    return PENDING_PREFIX + _safe_pair(sync_key, destination)


def _key_of(sync_key: str | TraitSet) -> str:
    return sync_key.name if isinstance(sync_key, TraitSet) else sync_key


def registration(
    wh: Warehouse, sync_key: str, destination: str | None = None
) -> dict[str, Any] | None:
    """The latest registry row of ``sync_key`` (at ``destination`` when given), or None."""
    if not wh.has_table(REGISTRY_TABLE):
        return None
    reg = wh.con.table(REGISTRY_TABLE)
    expr = reg.filter(reg["sync_key"] == sync_key)
    if destination is not None and "destination" in reg.columns:
        expr = expr.filter(expr["destination"] == destination)
    rows = utc_rows(expr.order_by(reg["registered_at"].desc()).limit(1).to_pyarrow().to_pylist())
    return rows[0] if rows else None


def published_keys(wh: Warehouse) -> list[dict[str, Any]]:
    """Every registered sync key with its state table, identifier, kind and traits.

    One row per sync key: the destination it was last registered for.
    """
    if not wh.has_table(REGISTRY_TABLE):
        return []
    reg = latest_per_key(wh.con.table(REGISTRY_TABLE), "sync_key", "registered_at")
    return utc_rows(reg.order_by("sync_key").to_pyarrow().to_pylist())


def destinations(wh: Warehouse, sync_key: str) -> list[str]:
    """The destinations ``sync_key`` has a state for, the most recently registered first."""
    if not wh.has_table(REGISTRY_TABLE):
        return []
    reg = wh.con.table(REGISTRY_TABLE)
    if "destination" not in reg.columns:
        return []
    mine = reg.filter((reg["sync_key"] == sync_key) & reg["destination"].notnull())
    latest = mine.group_by("destination").aggregate(at=mine["registered_at"].max())
    rows = latest.order_by(latest["at"].desc()).to_pyarrow().to_pylist()
    return [row["destination"] for row in rows]


def state_schema(src: SyncSource) -> sch.Schema:
    import ibis

    schema = src.table.schema()
    return ibis.schema(
        {
            src.id_column: schema[src.id_column],
            **{t: schema[t] for t in src.traits},
            REMOVED: "boolean",
            DELIVERED: "boolean",
            BASE: "int64",
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
    delivered_before = DELIVERED not in old  # a log from before the ledger: all acknowledged
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
        elif col == DELIVERED and delivered_before:
            exprs[col] = ibis.literal(True)
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


def ensure_state(wh: Warehouse, src: SyncSource, destination: str) -> str:
    """Create or migrate the state table of ``src`` at ``destination``, register it; its name."""
    name = state_table_name(src.sync_key, destination)
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
        log = log_table_name(name)
        if wh.has_table(log):  # the archive is read together with the state: same columns
            replace_table(wh, log, conform(wh.con.table(log), src))
    traits = ",".join(src.traits)
    here = registration(wh, src.sync_key, destination)
    if (
        here is None
        or here.get("destination") != destination
        or here["traits"] != traits
        or here["id_column"] != src.id_column
    ):
        ensure_table(wh, REGISTRY_TABLE, _registry_schema())
        row = {
            "sync_key": src.sync_key,
            "state_table": name,
            "id_column": src.id_column,
            "kind": src.kind,
            "traits": traits,
            "source": src.label,
            "registered_at": utc_now(),
            "destination": destination,
        }
        insert(wh, REGISTRY_TABLE, arrow_rows(_registry_schema(), [row]))
    return name


def _id_column(table: ir.Table) -> str:
    # The identifier is the first column by construction (state_schema).
    return table.columns[0]


def latest_state(wh: Warehouse, name: str, *, excluding_run: str | None = None) -> ir.Table | None:
    """The latest ledger row per identifier (delivered or unknown, tombstones included); None
    when there is no state yet.

    ``excluding_run`` leaves out what that run wrote: the state as it was before it.
    """
    if not wh.has_table(name):
        return None
    table = wh.con.table(name)
    if excluding_run is not None:
        table = table.filter(table[RUN_ID] != excluding_run)
    return latest_per_key(table, _id_column(table), SEQ)


def _delivered(table: ir.Table) -> ir.Table:
    return table.filter(table[DELIVERED]) if DELIVERED in table.columns else table


def snapshot_table(wh: Warehouse, sync_key: str, destination: str | None = None) -> str | None:
    """The state table the published snapshot of ``sync_key`` is read from.

    ``destination`` None: the destination most recently published to (a state from before
    destinations were recorded when there is none). None when nothing was published.
    """
    if destination is not None:
        name = state_table_name(sync_key, destination)
        return name if wh.has_table(name) else None
    for dest in destinations(wh, sync_key):
        name = state_table_name(sync_key, dest)
        if wh.has_table(name):
            return name
    legacy = state_table_name(sync_key)
    return legacy if wh.has_table(legacy) else None


def destination_of(wh: Warehouse, sync_key: str, name: str | None) -> str | None:
    """The destination whose state table of ``sync_key`` is ``name`` (None: none, or legacy)."""
    for dest in destinations(wh, sync_key):
        if state_table_name(sync_key, dest) == name:
            return dest
    return None


def published_snapshot(
    wh: Warehouse,
    sync_key: str | TraitSet,
    /,
    *,
    destination: str | None = None,
    excluding_run: str | None = None,
) -> ir.Table | None:
    """What Segment holds for this sync key according to its acknowledgements.

    The identifier and one column per trait, one row per profile whose traits were delivered
    and not since set to null (the latest *delivered* value: a later value whose delivery is
    unknown is not counted as held); None if nothing was ever published under this key. This is
    the baseline the Preview's drift comparison reads. ``destination``: that destination's
    snapshot (default: the one most recently published to). ``excluding_run``: as it was before
    that run (the baseline of an unfinished run that is being resumed).
    """
    name = snapshot_table(wh, _key_of(sync_key), destination)
    if name is None:
        return None
    table = _delivered(wh.con.table(name))
    if excluding_run is not None:
        table = table.filter(table[RUN_ID] != excluding_run)
    latest = latest_per_key(table, _id_column(table), SEQ)
    keep = [c for c in latest.columns if c not in BOOKKEEPING]
    return latest.filter(~latest[REMOVED]).select(*keep)


def published_version(wh: Warehouse, sync_key: str | TraitSet) -> int:
    """A number that grows whenever anything is written to the snapshot's state table (for
    caches keyed on "what was last published"); 0 when nothing was."""
    name = snapshot_table(wh, _key_of(sync_key))
    return 0 if name is None else max_seq(wh, name)


def max_seq(wh: Warehouse, name: str) -> int:
    if not wh.has_table(name):
        return 0
    # as_py: a NULL max (empty table) is None on every backend (Spark's pandas path gives NaN)
    value = wh.con.table(name)[SEQ].max().to_pyarrow().as_py()
    return 0 if value is None else int(value)


def compact(wh: Warehouse, name: str, *, slack: float = 1.25) -> bool:
    """Rewrite the state table to one row per identifier once the log grew by ``slack``.

    A publish appends two rows per profile it sends (in flight, then delivered), so a first
    publish leaves twice as many rows as profiles; 1.25 compacts after a few more runs.

    A crash before or during compaction is harmless: the rewrite is an atomic swap, and the
    log it replaces means the same thing.
    """
    if not wh.has_table(name) or not can_rewrite(wh):  # Spark: the log is kept whole
        return False
    table = wh.con.table(name)
    ident = _id_column(table)
    row = table.aggregate(n=table.count(), k=table[ident].nunique()).to_pyarrow().to_pylist()[0]
    rows, ids = int(row["n"] or 0), int(row["k"] or 0)
    # An identifier whose latest row is unknown keeps its latest delivered row too.
    if rows - ids <= max(1_000, int(ids * slack)):
        return False
    kept = _compacted(table, ident)
    _archive(wh, name, table, kept, ident)
    replace_table(wh, name, kept)
    return True


def _archive(wh: Warehouse, name: str, table: ir.Table, kept: ir.Table, ident: str) -> None:
    """Append the delivered rows compaction is about to leave out to the state's archive.

    A crash between this and the swap archives the same rows again next time: readers take one
    row per identifier and sequence number, so a duplicate means nothing.
    """
    keys = kept.select(_k_id=kept[ident], _k_seq=kept[SEQ])
    dropped = table.anti_join(keys, [table[ident] == keys["_k_id"], table[SEQ] == keys["_k_seq"]])
    dropped = _delivered(dropped)
    log = log_table_name(name)
    ensure_table(wh, log, table.schema())
    insert(wh, log, dropped.select(*wh.con.table(log).columns))


def _compacted(table: ir.Table, ident: str) -> ir.Table:
    """The latest row per identifier, and its latest delivered row when the latest is unknown."""
    import ibis

    if DELIVERED not in table.columns:
        return latest_per_key(table, ident, SEQ)
    every = ibis.window(group_by=table[ident], order_by=ibis.desc(table[SEQ]))
    by_status = ibis.window(
        group_by=[table[ident], table[DELIVERED]], order_by=ibis.desc(table[SEQ])
    )
    ranked = table.mutate(
        _sync_all=ibis.row_number().over(every), _sync_st=ibis.row_number().over(by_status)
    )
    keep = (ranked["_sync_all"] == 0) | (ranked[DELIVERED] & (ranked["_sync_st"] == 0))
    return ranked.filter(keep).drop("_sync_all", "_sync_st")
