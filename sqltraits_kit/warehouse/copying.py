"""Arrow data into a warehouse: a table for the length of a block, appended rows, and copying
tables between warehouses in Arrow batches (the demo sample into PostgreSQL or Spark)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from sqltraits_kit.warehouse.capabilities import capabilities

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pyarrow as pa

    from sqltraits_kit.warehouse.connection import Warehouse

__all__ = ["SAMPLE_TABLES", "arrow_table", "copy_tables", "insert_arrow"]

#: The tables the demo sample holds, in a load order that keeps references valid.
SAMPLE_TABLES = (
    "accounts",
    "users",
    "order_completed",
    "tracks",
    "pages",
    "sample_truth",
    "sample_parameters",
)


@contextlib.contextmanager
def arrow_table(wh: Warehouse, data: pa.Table) -> Iterator[ir.Table]:
    """``data`` as a table in the warehouse for the length of the block (then released).

    Ibis' in-memory table, except on Spark: Ibis 12 loads one into Spark through pandas, which
    writes a null string as the string ``'NaN'``; there the Arrow table becomes a DataFrame
    directly (PySpark 4) under a temporary view.

    Ibis keeps an in-memory table until the process exits (a view over the Arrow data on DuckDB,
    a temporary table on PostgreSQL): a publish that commits 250 pages would keep every one of
    them, so it is released at the end of the block.
    """
    import ibis

    if capabilities(wh).spark_dataframes:
        session: Any = wh.con._session  # the Ibis PySpark backend's session
        name = f"_sqltraits_arrow_{uuid.uuid4().hex[:16]}"
        session.createDataFrame(data).createOrReplaceTempView(name)
        try:
            yield wh.con.table(name)
        finally:
            with contextlib.suppress(Exception):
                session.catalog.dropTempView(name)
        return
    rows = ibis.memtable(data)
    try:
        yield rows
    finally:
        # Whichever kind of object the backend made of it; the other drop fails harmlessly.
        name = rows.op().name
        with contextlib.suppress(Exception):
            wh.con.drop_view(name, force=True)
        with contextlib.suppress(Exception):
            wh.con.drop_table(name, force=True)


def insert_arrow(wh: Warehouse, name: str, data: pa.Table) -> None:
    """Append ``data`` (columns named like the table's) to the table ``name``."""
    if not data.num_rows:
        return
    with arrow_table(wh, data) as rows:
        wh.con.insert(name, rows)


def copy_tables(
    source: Warehouse,
    dest: Warehouse,
    *,
    tables: Iterable[str] = SAMPLE_TABLES,
    batch_rows: int = 250_000,
    overwrite: bool = True,
    progress: Callable[[str, float], None] | None = None,
) -> dict[str, int]:
    """Copy tables between warehouses in Arrow batches (bounded memory); returns rows per table.

    Used to load the demo sample into PostgreSQL so the same code runs on both.
    """
    import pyarrow as pa

    report = progress or (lambda _msg, _frac: None)
    names = [n for n in tables if source.has_table(n)]
    copied: dict[str, int] = {}
    for i, name in enumerate(names):
        expr = source.table(name)
        total = int(expr.count().execute())
        schema = expr.schema()
        dest.con.create_table(name, schema=schema, overwrite=overwrite)
        done = 0
        for batch in expr.to_pyarrow_batches(chunk_size=batch_rows):
            if batch.num_rows:
                insert_arrow(dest, name, pa.Table.from_batches([batch]))
                done += batch.num_rows
            report(
                f"copying {name}: {done:,}/{total:,} rows", (i + done / max(total, 1)) / len(names)
            )
        copied[name] = done
    report("done", 1.0)
    return copied
