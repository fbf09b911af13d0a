"""The runs an output table's history keeps, and a rollback to one of them."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqltraits_kit.errors import ConfigError, UnknownTableError
from sqltraits_kit.traits.output.tables import (
    METADATA_COLUMNS,
    OutputRun,
    OutputWrite,
    check_table_name,
    history_table,
)
from sqltraits_kit.traits.output.write import write_output

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.traits.output.staging import Validator
    from sqltraits_kit.warehouse import Warehouse

__all__ = ["rollback", "runs"]


def _history(wh: Warehouse, table: str) -> ir.Table:
    check_table_name(table)
    name = history_table(table)
    if not wh.has_table(name):
        raise UnknownTableError(f"{table!r} has no run history ({name!r} does not exist)")
    return wh.con.table(name)


def _current_run(wh: Warehouse, table: str) -> str | None:
    if not wh.has_table(table) or "run_id" not in wh.con.table(table).columns:
        return None
    values = wh.con.table(table).select("run_id").limit(1).to_pyarrow().column(0).to_pylist()
    return values[0] if values else None


def runs(wh: Warehouse, table: str, /) -> list[OutputRun]:
    """Every run kept in ``<table>_history``, newest first; ``current`` marks the live one."""
    hist = _history(wh, table)
    summary = hist.group_by("run_id").aggregate(
        scored_at=hist.scored_at.max(),
        model_name=hist.model_name.max(),
        model_version=hist.model_version.cast("string").max(),
        rows=hist.count(),
    )
    summary = summary.order_by([summary.scored_at.desc(), summary.run_id.desc()])
    current = _current_run(wh, table)
    out = []
    for row in summary.to_pyarrow().to_pylist():
        when = row["scored_at"]
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        out.append(
            OutputRun(
                run_id=row["run_id"],
                scored_at=when,
                model_name=row["model_name"],
                model_version=row["model_version"],
                rows=int(row["rows"]),
                current=row["run_id"] == current,
            )
        )
    return out


def rollback(
    wh: Warehouse,
    table: str,
    run_id: str,
    /,
    *,
    id_column: str | None = None,
    validate: Validator | None = None,
) -> OutputWrite:
    """Make ``table`` hold the rows of an earlier run again (staged, checked and swapped).

    The history is not appended to: the run is already there, and :func:`runs` marks it as the
    current one. Columns a later run added (NULL throughout this run) are left out.
    """
    hist = _history(wh, table)
    rows = hist.filter(hist.run_id == run_id)
    columns = list(hist.columns)
    counts = (
        rows.aggregate(
            _rows=rows.count(), **{f"c{i}": rows[c].count() for i, c in enumerate(columns)}
        )
        .to_pyarrow()
        .to_pylist()[0]
    )
    if not counts["_rows"]:
        known = ", ".join(r.run_id for r in runs(wh, table)[:10]) or "none"
        raise ConfigError(f"no run {run_id!r} in {history_table(table)} (latest runs: {known})")
    kept = [c for i, c in enumerate(columns) if counts[f"c{i}"] or c in METADATA_COLUMNS]
    if id_column is None:
        candidates = [c for c in kept if c in ("user_id", "group_id", "anonymous_id", "email")]
        if not candidates:
            raise ConfigError(f"cannot tell the identifier column of {table!r}: pass id_column")
        id_column = candidates[0]
    return write_output(
        wh,
        rows.select(*kept),
        table=table,
        id_column=id_column,
        run_id=run_id,
        validate=validate,
        keep_history=False,
    )
