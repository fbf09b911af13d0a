"""Copying tables between warehouses in Arrow batches (the demo sample into PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqltraits_kit.warehouse.connection import Warehouse

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
                dest.con.insert(name, pa.Table.from_batches([batch]))
                done += batch.num_rows
            report(
                f"copying {name}: {done:,}/{total:,} rows", (i + done / max(total, 1)) / len(names)
            )
        copied[name] = done
    report("done", 1.0)
    return copied
