"""Published versions: what a destination held after each run, read back from the ledger.

The ledger of a sync key at a destination (:mod:`.state`) only grows: every value a run sent is
appended, as *unknown* and then, once Segment acknowledged it, as *delivered*; compaction moves
the delivered rows it leaves out to the state's archive. So the published snapshot *as it stood
after run X* is the latest delivered, not-removed row per identifier among the rows written by
X and the runs before it (one run per sync key and destination at a time: the lease). That is
the version a rollback re-publishes and the population an outcome report judges.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.publishing.sync import runs as r
from sqltraits_kit.publishing.sync import state as s
from sqltraits_kit.publishing.sync.tables import latest_per_key

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.warehouse import Warehouse

__all__ = ["FINISHED", "ledger_log", "published_runs", "run_record", "snapshot_at"]

#: Final statuses of a run that left a version behind (partial: what Segment acknowledged).
FINISHED = ("succeeded", "partial")


def ledger_log(wh: Warehouse, state_table: str) -> ir.Table:
    """Every ledger row of ``state_table``: the state and its archive, one row per
    (identifier, sequence number)."""
    import ibis

    table = wh.con.table(state_table)
    log = s.log_table_name(state_table)
    if not wh.has_table(log):
        return table
    old = wh.con.table(log)
    schema = table.schema()
    old = old.select(
        **{
            c: (old[c].cast(schema[c]) if c in old.columns else ibis.null(schema[c]))
            for c in table.columns
        }
    )
    both = table.union(old, distinct=False)
    return latest_per_key(both, [table.columns[0], s.SEQ], s.SEQ)


def _runs(wh: Warehouse, sync_key: str) -> list[dict[str, Any]]:
    frame = r.history(wh, sync_key=sync_key)
    return frame.to_dict(orient="records")


def published_runs(
    wh: Warehouse, sync_key: str, /, *, destination: str | None = None
) -> list[dict[str, Any]]:
    """The finished runs of ``sync_key`` (at ``destination`` when given), newest first: each
    one a version that :func:`snapshot_at` reads back."""
    rows = [x for x in _runs(wh, sync_key) if x["status"] in FINISHED]
    if destination is not None:
        rows = [x for x in rows if x["destination"] == destination]
    return rows


def run_record(wh: Warehouse, sync_key: str, run_id: str, /) -> dict[str, Any]:
    """The latest history row of ``run_id`` under ``sync_key``; a ConfigError naming the recent
    runs when there is none."""
    rows = _runs(wh, sync_key)
    for row in rows:
        if row["run_id"] == run_id:
            return row
    known = ", ".join(x["run_id"] for x in rows[:5]) or "none"
    raise ConfigError(f"no publish run {run_id!r} of sync key {sync_key!r} (latest: {known})")


def snapshot_at(
    wh: Warehouse, sync_key: str, run_id: str, /, *, destination: str | None = None
) -> ir.Table:
    """What the destination held for ``sync_key`` after run ``run_id``, by its acknowledgements:
    the identifier and the traits, one row per profile (profiles then set to null left out).

    ``destination``: checked against the run's own (a run went to one destination). Refuses a
    run that did not finish (its version is the one before it, or the next attempt's).
    """
    run = run_record(wh, sync_key, run_id)
    if run["status"] not in FINISHED:
        raise ConfigError(
            f"run {run_id} of {sync_key!r} is {run['status']}: it left no version of its own "
            f"(versions: runs that {' or '.join(FINISHED)})"
        )
    dest = run["destination"]
    if destination is not None and dest != destination:
        raise ConfigError(
            f"run {run_id} of {sync_key!r} went to another destination than this one; a "
            "version is re-published where it was published"
        )
    name = s.state_table_name(sync_key, dest) if dest is not None else None
    if name is None or not wh.has_table(name):
        raise ConfigError(f"no ledger for {sync_key!r} at the destination of run {run_id}")
    started = run["started_at"]
    upto = [
        x["run_id"]
        for x in _runs(wh, sync_key)
        if x["destination"] == dest and x["started_at"] <= started
    ]
    table = ledger_log(wh, name)
    ident = table.columns[0]
    rows = table.filter(table[s.RUN_ID].isin(upto) & table[s.DELIVERED])
    latest = latest_per_key(rows, ident, s.SEQ)
    keep = [c for c in latest.columns if c not in s.BOOKKEEPING]
    return latest.filter(~latest[s.REMOVED]).select(*keep)
