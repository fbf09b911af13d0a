"""The Preview's exports: the equivalent Segment SQL Trait query, and the traits as CSV."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqltraits_kit.errors import ConfigError, DataError
from sqltraits_kit.traits.traitset import TraitSet, resolve

if TYPE_CHECKING:
    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "CSV_ROWS",
    "SEGMENT_DIALECTS",
    "csv_file_name",
    "csv_row_choices",
    "export_csv",
    "frozen_cut_points",
    "segment_dialects",
    "segment_sql",
]

#: Warehouses Segment's SQL Traits read from (``src/unify/Traits/sql-traits.md``) that Ibis or
#: sqlglot can write: Redshift is written by sqlglot from the PostgreSQL form. Azure SQL is left
#: out: Ibis cannot compile the NaN checks of tiers and flags to T-SQL.
SEGMENT_DIALECTS = ("snowflake", "bigquery", "redshift", "postgres")
#: The row counts a CSV download offers: the app builds the file in memory, so it is bounded
#: (:func:`export_csv` itself streams any number of rows to a file).
CSV_ROWS = (1_000, 10_000, 100_000)


def segment_dialects(wh: Warehouse, /) -> list[str]:
    """The dialects :func:`segment_sql` writes for ``wh``: Segment's, then the warehouse's own."""
    own = "postgres" if wh.backend == "postgres" else wh.backend
    return list(dict.fromkeys([*SEGMENT_DIALECTS, own]))


def csv_row_choices(rows: int, /) -> tuple[list[int], int]:
    """(the row counts a download of ``rows`` profiles offers, the one chosen by default)."""
    choices = [n for n in CSV_ROWS if n < rows]
    if rows <= CSV_ROWS[-1]:
        choices.append(rows)
    choices = choices or [CSV_ROWS[-1]]
    return choices, min(choices, key=lambda n: abs(n - CSV_ROWS[1]))


def csv_file_name(trait_set: TraitSet, /) -> str:
    """A safe file name for the trait set's CSV (``churn.csv``)."""
    return (re.sub(r"[^A-Za-z0-9_.-]+", "_", trait_set.name).strip("_") or "traits") + ".csv"


def segment_sql(wh: Warehouse, trait_set: TraitSet, /, *, dialect: str | None = None) -> str:
    """The SQL Trait query equivalent to publishing ``trait_set``, for Segment to pull itself.

    A SELECT of the identifier and every trait aliased to its trait name (renames, rounding,
    tiers and flags included), compiled by Ibis for ``dialect`` (one of
    :data:`SEGMENT_DIALECTS`; default: the warehouse's own). The warehouse supplies the column
    types and, for ``type = "quantiles"`` traits, this run's cut points, which the query then
    holds as constants: regenerate it after each scoring run.
    """
    import ibis
    import sqlglot

    allowed = segment_dialects(wh)
    target = (dialect or allowed[-1]).strip().lower()
    if target not in allowed:
        raise ConfigError(f"dialect must be one of {', '.join(allowed)}")
    table = resolve(wh, trait_set)
    if target == "redshift":
        # Ibis has no Redshift compiler; Redshift reads PostgreSQL's form with sqlglot's help.
        sql = str(ibis.to_sql(table, dialect="postgres"))
        return sqlglot.transpile(sql, read="postgres", write="redshift", pretty=True)[0]
    return str(ibis.to_sql(table, dialect=target))


def frozen_cut_points(trait_set: TraitSet, /) -> list[str]:
    """Derived traits whose cut points :func:`segment_sql` writes as constants (quantiles)."""
    return [d.name for d in trait_set.derived if d.type == "quantiles"]


def export_csv(
    wh: Warehouse,
    trait_set: TraitSet,
    path_or_buffer: str | os.PathLike[str] | BinaryIO,
    /,
    *,
    limit: int | None = None,
    batch_rows: int = 100_000,
) -> int:
    """Write the resolved traits as CSV, in identifier order; returns the number of rows.

    Rows stream from the warehouse in Arrow batches of ``batch_rows`` straight into the CSV
    writer, so memory stays flat whatever the table size. ``limit`` keeps the first rows only.
    ``path_or_buffer``: a path, or a binary file object (``open(p, "wb")``, ``io.BytesIO()``).
    Values are the resolved ones (renamed, rounded, tiers computed); nulls are empty fields.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if limit is not None and limit < 0:
        raise ConfigError(f"limit must be >= 0, got {limit}")
    if batch_rows < 1:
        raise ConfigError(f"batch_rows must be >= 1, got {batch_rows}")
    if isinstance(path_or_buffer, io.TextIOBase):
        raise ConfigError("export_csv writes bytes: pass a path or a binary file (mode 'wb')")
    table = resolve(wh, trait_set)
    table = table.order_by(trait_set.identifier)
    if limit is not None:
        table = table.limit(limit)
    reader = table.to_pyarrow_batches(chunk_size=batch_rows)
    target: Any = path_or_buffer
    if isinstance(path_or_buffer, str | os.PathLike):
        target = Path(path_or_buffer)
        target.parent.mkdir(parents=True, exist_ok=True)
        target = str(target)
    written = 0
    try:
        with pacsv.CSVWriter(target, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
                written += batch.num_rows
    except pa.ArrowNotImplementedError as exc:
        nested = [f.name for f in reader.schema if pa.types.is_nested(f.type)]
        what = f"column {nested[0]!r} is {reader.schema.field(nested[0]).type}" if nested else exc
        raise DataError(f"cannot write the traits as CSV: {what}") from None
    return written
