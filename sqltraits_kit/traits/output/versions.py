"""The output table on an engine without transactional DDL: one table per run, and a view.

Spark (like Snowflake and BigQuery, whose DDL commits on its own) cannot drop the old table and
rename the staged one in one transaction. There the output table is a **view**, and each run is
written to a table of its own, ``sqltraits_out__<table>__<utc time><random>``; once that table has
passed every check, the run is appended to ``<table>_history`` and the view is switched to it by a
single ``CREATE OR REPLACE VIEW`` (one catalog operation: readers see the old run or the new one,
never none, and a run that fails or is killed before it leaves the view as it was).

The versions kept are the live one and the one before it (a query that started just before the
switch still reads it); older ones are dropped after the switch. The order of the two writes is
deliberate: the history is appended first, so a run killed between the two is in the history
(not marked current by :func:`~sqltraits_kit.traits.output.runs`) rather than live without a
record. A column added by a run is added to the history with ``ALTER TABLE ... ADD COLUMN``, one
catalog operation per column, null in earlier runs.

The first run on a table that an earlier version of the kit wrote as a plain table replaces it by
the view in two statements (drop, then create): the one step here that is not atomic, once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from typing import TYPE_CHECKING

from sqltraits_kit.traits.output.staging import check_kit_history, create_as, drop, insert_rows
from sqltraits_kit.warehouse.transactions import execute

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.warehouse import Warehouse

__all__ = ["VERSION_PREFIX", "append_history", "new_version", "switch_view", "versions"]

#: The tables holding one run each, behind the output view (a kit table: never offered to users).
VERSION_PREFIX = "sqltraits_out__"
#: Versions kept after a switch: the live one and the one before it.
KEEP = 2


def _prefix(table: str) -> str:
    return f"{VERSION_PREFIX}{table}__"


def new_version(table: str) -> str:
    """A new version's name; versions of one table sort by the time they were made."""
    return f"{_prefix(table)}{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S%f}{uuid.uuid4().hex[:6]}"


def versions(wh: Warehouse, table: str) -> list[str]:
    """The versions of ``table`` that exist, oldest first."""
    prefix = _prefix(table)
    return sorted(name for name in wh.tables() if name.startswith(prefix))


def append_history(wh: Warehouse, staged: ir.Table, history: str, id_column: str) -> None:
    """Create ``history`` from the run, or add the run's new columns and append its rows."""
    import ibis
    import sqlglot as sg
    import sqlglot.expressions as sge

    if not wh.has_table(history):
        execute(wh, create_as(wh, history, staged))
        return
    hschema = wh.con.table(history).schema()
    check_kit_history(history, hschema, id_column)
    schema = staged.schema()
    type_mapper = wh.con.compiler.type_mapper
    for name in [n for n in schema.names if n not in hschema]:
        column = sge.ColumnDef(
            this=sg.to_identifier(name, quoted=True), kind=type_mapper.from_ibis(schema[name])
        )
        alter = sge.Alter(this=sg.table(history, quoted=True), kind="TABLE", actions=[column])
        execute(wh, alter)
    hschema = wh.con.table(history).schema()
    rows = staged.select(
        **{n: staged[n].cast(t) if n in schema.names else ibis.null(t) for n, t in hschema.items()}
    )
    execute(wh, insert_rows(wh, history, rows))


def switch_view(wh: Warehouse, table: str, version: str, columns: list[str]) -> None:
    """Point the view ``table`` at ``version`` in one statement; then drop old versions."""
    import sqlglot as sg
    import sqlglot.expressions as sge

    query = sg.select(*(sg.column(c, quoted=True) for c in columns)).from_(
        sg.table(version, quoted=True)
    )
    view = sge.Create(
        kind="VIEW", replace=True, this=sg.table(table, quoted=True), expression=query
    )
    try:
        execute(wh, view)
    except Exception:
        if not wh.has_table(table):
            raise
        # A plain table of that name (written before the output was a view): replaced once.
        execute(wh, drop(table))
        execute(wh, view)
    for old in versions(wh, table)[:-KEEP]:
        if old != version:
            with contextlib.suppress(Exception):  # the next run tries again
                wh.con.drop_table(old, force=True)
