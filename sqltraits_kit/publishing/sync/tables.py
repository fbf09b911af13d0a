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
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqltraits_kit.warehouse.transactions import in_transaction

if TYPE_CHECKING:
    import ibis.expr.schema as sch
    import ibis.expr.types as ir
    import pyarrow as pa

    from sqltraits_kit.warehouse import Warehouse


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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
    """Give ``name`` the columns of ``schema`` it lacks (null); True if it was rewritten."""
    import ibis

    table = wh.con.table(name)
    missing = [c for c in schema.names if c not in table.columns]
    if not missing:
        return False
    replace_table(wh, name, table.mutate(**{c: ibis.null(schema[c]) for c in missing}))
    return True


def arrow_rows(schema: sch.Schema, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Python rows as an Arrow table typed exactly like ``schema`` (missing keys are null)."""
    import pyarrow as pa

    target = schema.to_pyarrow()
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    return pa.table({f.name: pa.array(columns[f.name], type=f.type) for f in target}, schema=target)


def insert(wh: Warehouse, name: str, data: pa.Table | ir.Table) -> None:
    """Append an Arrow table or an Ibis expression (its columns named like the target's) to
    ``name``; an expression runs as one ``INSERT ... SELECT`` in the warehouse.

    Ibis loads the rows as an in-memory table (a view over the Arrow data on DuckDB, a
    temporary table on PostgreSQL) and drops it only when the process exits: a publish that
    commits 250 pages would keep every one of them. It is released right after the insert.
    """
    import ibis

    if isinstance(data, ibis.Table):
        wh.con.insert(name, data)
        return
    if not data.num_rows:
        return
    rows = ibis.memtable(data)
    try:
        wh.con.insert(name, rows)
    finally:
        _release(wh, rows.op().name)


@contextlib.contextmanager
def arrow_view(wh: Warehouse, data: pa.Table) -> Iterator[ir.Table]:
    """``data`` as a table in the warehouse for the length of the block (then released)."""
    import ibis

    rows = ibis.memtable(data)
    try:
        yield rows
    finally:
        _release(wh, rows.op().name)


def _release(wh: Warehouse, name: str) -> None:
    # Whichever kind of object the backend made of it; the other drop fails harmlessly.
    with contextlib.suppress(Exception):
        wh.con.drop_view(name, force=True)
    with contextlib.suppress(Exception):
        wh.con.drop_table(name, force=True)


def replace_table(wh: Warehouse, name: str, expr: ir.Table) -> None:
    """Make ``expr`` the content of ``name``, atomically where the engine has transactional DDL.

    Readers (and a process killed at any instant) see the old table or the new one, never none.
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
        in_transaction(wh, statements)
    except BaseException:
        with contextlib.suppress(Exception):
            wh.con.drop_table(scratch, force=True)
        raise


def latest_per_key(table: ir.Table, key: str | Sequence[str], order: str) -> ir.Table:
    """One row per ``key``: the one with the largest ``order`` value."""
    import ibis

    keys = [key] if isinstance(key, str) else list(key)
    window = ibis.window(group_by=[table[k] for k in keys], order_by=ibis.desc(table[order]))
    ranked = table.mutate(_sync_rank=ibis.row_number().over(window))
    return ranked.filter(ranked["_sync_rank"] == 0).drop("_sync_rank")
