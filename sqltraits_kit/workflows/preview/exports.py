"""The Preview's exports: the equivalent Segment SQL Trait query, and the traits as CSV."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqltraits_kit.errors import ConfigError, DataError
from sqltraits_kit.traits.traitset import TraitSet, resolve

if TYPE_CHECKING:
    from sqltraits_kit.warehouse import Warehouse

__all__ = ["SEGMENT_DIALECTS", "export_csv", "frozen_cut_points", "segment_sql"]

#: Warehouses Segment's SQL Traits read from (``src/unify/Traits/sql-traits.md``) that Ibis or
#: sqlglot can write: Redshift is written by sqlglot from the PostgreSQL form. Azure SQL is left
#: out: Ibis cannot compile the NaN checks of tiers and flags to T-SQL.
SEGMENT_DIALECTS = ("snowflake", "bigquery", "redshift", "postgres")


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

    own = "postgres" if wh.backend == "postgres" else wh.backend
    target = (dialect or own).strip().lower()
    allowed = (*SEGMENT_DIALECTS, own)
    if target not in allowed:
        raise ConfigError(f"dialect must be one of {', '.join(dict.fromkeys(allowed))}")
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
