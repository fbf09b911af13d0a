"""A Python function over a table's Arrow batches, run by the engine's own workers.

On an engine whose DataFrame API maps Python over Arrow batches (Spark's ``mapInArrow``; see
:mod:`~sqltraits_kit.warehouse.capabilities`), a model that has no SQL translation is applied
where the rows are: each worker reads its partitions, calls the function on one Arrow batch at a
time (``spark.sql.execution.arrow.maxRecordsPerBatch`` rows, 10,000 by default) and writes the
result straight into a table. No row passes through the driver, so neither the number of
profiles nor the driver's memory bounds the run; the workers need the function's libraries
(scikit-learn, and the kit when the function uses it) installed, as for any Python UDF.

The function is pickled with cloudpickle and sent to the workers: it must hold what it needs (the
fitted model) and nothing tied to this process (a connection, an open file).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from sqltraits_kit.warehouse.capabilities import capabilities

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pyarrow as pa

    from sqltraits_kit.warehouse.connection import Warehouse

__all__ = ["map_arrow_batches"]


def map_arrow_batches(
    wh: Warehouse,
    expr: ir.Table,
    fn: Callable[[pa.RecordBatch], pa.Table],
    /,
    *,
    schema: pa.Schema,
    table: str,
) -> ir.Table:
    """Write ``fn`` applied to every Arrow batch of ``expr`` to a new table ``table``.

    ``fn`` returns a table of ``schema`` for each batch (any number of rows). Raises
    :class:`NotImplementedError` on an engine without an Arrow-batch mapping (check
    ``capabilities(wh).spark_dataframes`` first).
    """
    if not capabilities(wh).spark_dataframes:
        raise NotImplementedError(f"{wh.backend} has no Arrow-batch mapping on its workers")
    from pyspark.sql.pandas.types import from_arrow_schema

    # The Ibis PySpark backend's session: the same one every other query of ``wh`` runs in.
    session: Any = wh.con._session
    frame = session.sql(wh.con.compile(expr))

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if batch.num_rows:
                yield from fn(batch).cast(schema).to_batches()

    mapped = frame.mapInArrow(run, from_arrow_schema(schema))
    mapped.write.saveAsTable(table, format="parquet", mode="errorifexists")
    return wh.con.table(table)
