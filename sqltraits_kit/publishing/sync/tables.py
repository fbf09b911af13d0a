"""Append-only tables through Ibis: create when missing, insert Arrow, read the latest row per key.

Ibis has no UPDATE or DELETE, so every table the sync keeps is a log: rows are only appended,
and "the current value" is the latest row per key. A rewrite (compaction, a schema change) is
built under a scratch name and swapped in with DROP + RENAME in one transaction: Ibis'
``create_table(..., overwrite=True)`` runs those two as separate statements on DuckDB, and a
``kill -9`` between them would lose the table.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqltraits_kit.warehouse.capabilities import capabilities
from sqltraits_kit.warehouse.copying import arrow_table, insert_arrow
from sqltraits_kit.warehouse.transactions import execute, in_transaction

if TYPE_CHECKING:
    import ibis.expr.schema as sch
    import ibis.expr.types as ir
    import pyarrow as pa

    from sqltraits_kit.warehouse import Warehouse


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def utc_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows read back from the kit's tables with every timestamp in UTC.

    Each one was written in UTC; an engine whose timestamp type has no zone (Spark's, read in
    the session's time zone, which the kit needs set to UTC) hands them back naive.
    """
    for row in rows:
        for key, value in row.items():
            if isinstance(value, dt.datetime) and value.tzinfo is None:
                row[key] = value.replace(tzinfo=dt.UTC)
    return rows


def ensure_table(wh: Warehouse, name: str, schema: sch.Schema) -> None:
    """Create ``name`` with ``schema`` unless it exists (another process may win the race).

    A table written by an earlier version that lacks some of ``schema``'s columns gets them,
    null in its existing rows (rewritten atomically, see :func:`replace_table`).
    """
    if wh.has_table(name):
        # Once per connection and table: record_failures calls this at every commit.
        checked = wh.__dict__.setdefault("_sqltraits_columns_checked", set())
        if name not in checked:
            add_missing_columns(wh, name, schema)
            checked.add(name)
        return
    try:
        wh.con.create_table(name, schema=schema)
    except Exception:
        if not wh.has_table(name):
            raise


def add_missing_columns(wh: Warehouse, name: str, schema: sch.Schema) -> bool:
    """Give ``name`` the columns of ``schema`` it lacks (null); True if it was changed.

    Rewritten and swapped in one transaction where DDL is transactional; elsewhere (Spark) one
    ``ALTER TABLE ... ADD COLUMN`` per column, each a single catalog operation.
    """
    import ibis

    table = wh.con.table(name)
    missing = [c for c in schema.names if c not in table.columns]
    if not missing:
        return False
    if capabilities(wh).transactional_ddl:
        replace_table(wh, name, table.mutate(**{c: ibis.null(schema[c]) for c in missing}))
        return True
    import sqlglot as sg
    import sqlglot.expressions as sge

    type_mapper = wh.con.compiler.type_mapper
    for column in missing:
        definition = sge.ColumnDef(
            this=sg.to_identifier(column, quoted=True), kind=type_mapper.from_ibis(schema[column])
        )
        execute(wh, sge.Alter(this=sg.table(name, quoted=True), kind="TABLE", actions=[definition]))
    return True


def arrow_rows(schema: sch.Schema, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Python rows as an Arrow table typed exactly like ``schema`` (missing keys are null)."""
    import pyarrow as pa

    target = schema.to_pyarrow()
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    return pa.table({f.name: pa.array(columns[f.name], type=f.type) for f in target}, schema=target)


def insert(wh: Warehouse, name: str, data: pa.Table | ir.Table) -> None:
    """Append an Arrow table or an Ibis expression (its columns named like the target's) to
    ``name``; an expression runs as one ``INSERT ... SELECT`` in the warehouse, Arrow rows are
    loaded for the statement and released right after
    (:func:`~sqltraits_kit.warehouse.copying.insert_arrow`)."""
    import ibis

    if isinstance(data, ibis.Table):
        wh.con.insert(name, data)
        return
    insert_arrow(wh, name, data)


def arrow_view(wh: Warehouse, data: pa.Table) -> contextlib.AbstractContextManager[ir.Table]:
    """``data`` as a table in the warehouse for the length of the block (then released)."""
    return arrow_table(wh, data)


def replace_table(wh: Warehouse, name: str, expr: ir.Table) -> None:
    """Make ``expr`` the content of ``name``, atomically where the engine has transactional DDL.

    Readers (and a process killed at any instant) see the old table or the new one, never none.
    Elsewhere (Spark) the drop and the rename are two statements: the kit calls this there only
    when a state table's column changes type (compaction is skipped, see
    :func:`can_rewrite`); a crash between the two leaves the content under the scratch name and
    no state, so the next run sends every profile again (idempotent values, not a loss).
    """
    import sqlglot as sg
    import sqlglot.expressions as sge

    scratch = f"sqltraits_tmp__{uuid.uuid4().hex[:16]}"
    wh.con.create_table(scratch, expr)
    statements = [
        sge.Drop(kind="TABLE", this=sg.table(name, quoted=True), exists=True),
        sge.Alter(
            this=sg.table(scratch, quoted=True),
            kind="TABLE",
            actions=[sge.AlterRename(this=sg.table(name, quoted=True))],
        ),
    ]
    try:
        if capabilities(wh).transactional_ddl:
            in_transaction(wh, statements)
        else:
            for statement in statements:
                execute(wh, statement)
    except BaseException:
        with contextlib.suppress(Exception):
            wh.con.drop_table(scratch, force=True)
        raise


def can_rewrite(wh: Warehouse) -> bool:
    """Whether a table can be rewritten and swapped in atomically (compaction needs it)."""
    return capabilities(wh).transactional_ddl


def latest_per_key(table: ir.Table, key: str | Sequence[str], order: str) -> ir.Table:
    """One row per ``key``: the one with the largest ``order`` value."""
    import ibis

    keys = [key] if isinstance(key, str) else list(key)
    window = ibis.window(group_by=[table[k] for k in keys], order_by=ibis.desc(table[order]))
    ranked = table.mutate(_sync_rank=ibis.row_number().over(window))
    return ranked.filter(ranked["_sync_rank"] == 0).drop("_sync_rank")
