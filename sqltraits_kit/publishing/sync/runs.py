"""Run history and failed rows: two append-only tables shared by every sync key.

``sqltraits_sync_runs`` gets a ``running`` row when a run starts (with the diff's counts) and a
final row when it ends (``succeeded``, ``partial``, ``failed`` — no row delivered —, or
``interrupted`` when an exception stopped it). A run whose latest row is ``running`` or
``interrupted`` did not finish: the next run of the same sync key resumes it under the same run
id. ``sqltraits_sync_failed`` gets one row per row that Segment did not take (a refused or
undeliverable batch, a message over 32 KB, a value that cannot become JSON), with the reason;
such rows are not in the state, so every later run sends them again until they succeed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqltraits_kit.publishing.sync.tables import (
    arrow_rows,
    ensure_table,
    insert,
    latest_per_key,
    utc_rows,
)

if TYPE_CHECKING:
    import ibis.expr.schema as sch
    import ibis.expr.types as ir
    import pandas as pd

    from sqltraits_kit.warehouse import Warehouse

__all__ = ["FAILED_TABLE", "RUNS_TABLE", "failed_rows", "history"]

RUNS_TABLE = "sqltraits_sync_runs"
FAILED_TABLE = "sqltraits_sync_failed"
#: Statuses of a run that did not finish; the next run of its sync key resumes it.
UNFINISHED = ("running", "interrupted")
COUNTS = ("rows", "new", "changed", "removed", "unchanged", "sent", "failed", "requests")


def runs_schema() -> sch.Schema:
    import ibis

    return ibis.schema(
        {
            "run_id": "string",
            "sync_key": "string",
            "source": "string",
            "kind": "string",
            "status": "string",
            "attempt": "int64",  # 1, then 2... for each resume of a crashed run
            "started_at": "timestamp('UTC')",
            "finished_at": "timestamp('UTC')",
            **{name: "int64" for name in COUNTS},
            "duration_s": "float64",
            "on_remove": "string",
            "error": "string",
            "recorded_at": "timestamp('UTC')",
            "event_seq": "int64",
            "destination": "string",  # endpoint#write-key fingerprint (null: before v0.x)
        }
    )


def failed_schema() -> sch.Schema:
    import ibis

    return ibis.schema(
        {
            "run_id": "string",
            "sync_key": "string",
            "identifier": "string",
            "reason": "string",
            "payload_bytes": "int64",
            "http_status": "int64",
            "requests": "int64",  # HTTP requests made for the batch in that run
            "failed_at": "timestamp('UTC')",
            "seq": "int64",  # same counter as the state's _sync_seq
            "destination": "string",
        }
    )


def record_run(wh: Warehouse, row: dict[str, Any]) -> None:
    ensure_table(wh, RUNS_TABLE, runs_schema())
    insert(wh, RUNS_TABLE, arrow_rows(runs_schema(), [row]))


def record_failures(wh: Warehouse, rows: list[dict[str, Any]]) -> None:
    if rows:
        ensure_table(wh, FAILED_TABLE, failed_schema())
        insert(wh, FAILED_TABLE, arrow_rows(failed_schema(), rows))


def _runs_of(wh: Warehouse, sync_key: str, destination: str | None) -> ir.Table:
    runs = _with_destination(wh.con.table(RUNS_TABLE))
    runs = runs.filter(runs["sync_key"] == sync_key)
    if destination is not None:
        runs = runs.filter(runs["destination"] == destination)
    return runs


def latest_run(
    wh: Warehouse, sync_key: str, destination: str | None = None
) -> dict[str, Any] | None:
    """The latest row recorded for ``sync_key`` (at ``destination`` when given): the latest
    run's current status, or None."""
    if not wh.has_table(RUNS_TABLE):
        return None
    runs = _runs_of(wh, sync_key, destination)
    rows = utc_rows(runs.order_by(runs["event_seq"].desc()).limit(1).to_pyarrow().to_pylist())
    return rows[0] if rows else None


def unfinished_run(wh: Warehouse, sync_key: str, destination: str | None = None) -> str | None:
    """The id of the run of ``sync_key`` that did not finish (the next run resumes it)."""
    latest = latest_run(wh, sync_key, destination)
    return latest["run_id"] if latest is not None and latest["status"] in UNFINISHED else None


def run_rows(wh: Warehouse, run_id: str) -> list[dict[str, Any]]:
    """Every row recorded for ``run_id``, oldest first."""
    if not wh.has_table(RUNS_TABLE):
        return []
    runs = wh.con.table(RUNS_TABLE)
    rows = runs.filter(runs["run_id"] == run_id).order_by("event_seq").to_pyarrow().to_pylist()
    return utc_rows(rows)


def max_failed_seq(wh: Warehouse, sync_key: str, destination: str | None = None) -> int:
    if not wh.has_table(FAILED_TABLE):
        return 0
    failed = _failed_of(wh, sync_key, destination)
    value = failed["seq"].max().to_pyarrow().as_py()  # None when empty, on every backend
    return 0 if value is None else int(value)


def _failed_of(wh: Warehouse, sync_key: str, destination: str | None) -> ir.Table:
    failed = wh.con.table(FAILED_TABLE)
    failed = failed.filter(failed["sync_key"] == sync_key)
    if destination is not None and "destination" in failed.columns:
        failed = failed.filter(failed["destination"] == destination)
    return failed


def history(
    wh: Warehouse, /, *, sync_key: str | None = None, limit: int | None = None
) -> pd.DataFrame:
    """One row per run (its latest status), newest first.

    Columns: run_id, sync_key, source, kind, status, attempt, started_at, finished_at, rows,
    new, changed, removed, unchanged, sent, failed, requests, duration_s, on_remove, error,
    destination (the endpoint and write-key fingerprint the run sent to).
    """
    import pandas as pd

    columns = [c for c in runs_schema().names if c not in ("recorded_at", "event_seq")]
    if not wh.has_table(RUNS_TABLE):
        return pd.DataFrame(columns=columns)
    runs = _with_destination(wh.con.table(RUNS_TABLE))
    if sync_key is not None:
        runs = runs.filter(runs["sync_key"] == sync_key)
    latest = latest_per_key(runs, "run_id", "event_seq")
    expr = latest.order_by([latest["started_at"].desc(), latest["run_id"].desc()]).select(*columns)
    if limit is not None:
        expr = expr.limit(limit)
    return expr.to_pandas()


def failed_rows(
    wh: Warehouse,
    /,
    *,
    run_id: str | None = None,
    sync_key: str | None = None,
    outstanding: bool | None = None,
    limit: int | None = 10_000,
) -> pd.DataFrame:
    """Failed rows with ``attempts`` (how many times the identifier has failed so far).

    With ``run_id``: the rows that failed in that run. Otherwise (``outstanding``, the default
    without a run id): the latest failure of each identifier that has not been acknowledged
    since — the rows the next run will send again.
    """
    import ibis
    import pandas as pd

    from sqltraits_kit.publishing.sync.state import DELIVERED, SEQ, state_table_name

    columns = ["run_id", "sync_key", "identifier", "reason", "payload_bytes", "attempts"]
    columns += ["http_status", "requests", "failed_at", "destination"]
    if not wh.has_table(FAILED_TABLE):
        return pd.DataFrame(columns=columns)
    failed = _with_destination(wh.con.table(FAILED_TABLE))
    if sync_key is not None:
        failed = failed.filter(failed["sync_key"] == sync_key)
    group = [failed["sync_key"], failed["destination"], failed["identifier"]]
    window = ibis.window(group_by=group, order_by=failed["seq"])
    failed = failed.mutate(attempts=ibis.row_number().over(window) + 1)
    if outstanding is None:
        outstanding = run_id is None
    if run_id is not None:
        failed = failed.filter(failed["run_id"] == run_id)
    if outstanding:
        failed = latest_per_key(failed, ["sync_key", "destination", "identifier"], "seq")
        pairs = failed.select("sync_key", "destination").distinct().to_pyarrow().to_pylist()
        parts = []
        for pair in pairs:
            key, dest = pair["sync_key"], pair["destination"]
            part = failed.filter(
                (failed["sync_key"] == key) & failed["destination"].identical_to(dest)
            )
            name = state_table_name(key, dest)
            if wh.has_table(name):
                state = wh.con.table(name)
                if DELIVERED in state.columns:  # only a delivery settles a failure
                    state = state.filter(state[DELIVERED])
                acked = state.group_by(_ack_id=state[state.columns[0]].cast("string")).aggregate(
                    _ack_seq=state[SEQ].max()
                )
                joined = part.left_join(acked, part["identifier"] == acked["_ack_id"])
                part = joined.filter(
                    joined["_ack_seq"].isnull() | (joined["_ack_seq"] < joined["seq"])
                ).select(*part.columns)
            parts.append(part)
        if not parts:
            return pd.DataFrame(columns=columns)
        failed = ibis.union(*parts) if len(parts) > 1 else parts[0]
    expr = failed.order_by([failed["failed_at"].desc(), failed["identifier"]]).select(*columns)
    if limit is not None:
        expr = expr.limit(limit)
    return expr.to_pandas()


def _with_destination(table: ir.Table) -> ir.Table:
    """A runs or failed table written before destinations were recorded reads as null ones."""
    import ibis

    if "destination" in table.columns:
        return table
    return table.mutate(destination=ibis.null("string"))


def failed_identifiers(wh: Warehouse, sync_key: str, destination: str | None = None) -> Any:
    """Identifiers (as strings) that ever failed under ``sync_key`` (at ``destination``); None
    if none did."""
    if not wh.has_table(FAILED_TABLE):
        return None
    return _failed_of(wh, sync_key, destination)["identifier"]
