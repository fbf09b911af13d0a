"""What an engine can do that the kit's atomic steps depend on, in one small table.

Ibis says whether a backend has temporary tables (``supports_temporary_tables``); it does not say
whether DDL is transactional, whether a primary key is enforced, or whether the engine can run a
Python function over Arrow batches on its own workers. Those are facts about the engine, listed
here once, and every module that needs one asks :func:`capabilities` instead of comparing
backend names itself:

========  =============  ===========  ==========  =======  ==========================
engine    transactional  enforced     temporary   indexes  Spark DataFrames (Arrow in,
          DDL            primary key  tables               ``mapInArrow`` on workers)
========  =============  ===========  ==========  =======  ==========================
duckdb    yes            yes          yes         no [1]_  no
postgres  yes            yes          yes         yes      no
pyspark   no             no           no [2]_     no       yes
other     no             no           Ibis' flag  no       no
========  =============  ===========  ==========  =======  ==========================

.. [1] DuckDB skips row ranges by min/max metadata without one.
.. [2] Ibis 12's PySpark backend inherits ``supports_temporary_tables = True``, but its
   ``create_table(temp=True)`` raises NotImplementedError.

What changes on an engine without transactional DDL (Spark, and Snowflake/BigQuery, whose DDL
commits on its own):

- the output table is a view over one table per run, switched with a single
  ``CREATE OR REPLACE VIEW`` (:mod:`sqltraits_kit.traits.output`);
- the sync state is never compacted (a rewrite could not be swapped in atomically), and a
  column added to it is an ``ALTER TABLE ... ADD COLUMNS``, one catalog operation;
- rows from Python (run records, registry rows) are loaded as a DataFrame straight from Arrow:
  Ibis 12 loads an in-memory table into Spark through pandas, which turns a null string into the
  string ``'NaN'``;
- without an enforced primary key the lease of a sync key is a record of the holder, not a lock
  (two runs started within the same second can both take it): one run per trait set at a time is
  then the scheduler's to guarantee (e.g. a Databricks job with at most one concurrent run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqltraits_kit.warehouse.connection import Warehouse

__all__ = ["Capabilities", "capabilities"]

#: Engines where DROP + RENAME (and CREATE) run inside one transaction, all or nothing.
_TRANSACTIONAL_DDL = frozenset({"duckdb", "postgres"})
#: Engines that enforce a primary key, so a racing INSERT of the same key fails.
_ENFORCED_KEYS = frozenset({"duckdb", "postgres"})
#: See note [2] above.
_NO_TEMP_TABLES = frozenset({"pyspark"})
#: Engines where an index on a scratch table's row number makes range scans cheap.
_INDEXES = frozenset({"postgres"})
#: Engines with a Spark DataFrame API: Arrow in, and Python over Arrow batches on the workers.
_SPARK_DATAFRAMES = frozenset({"pyspark"})


@dataclass(frozen=True)
class Capabilities:
    """The engine facts the kit's atomic steps and scoring paths depend on."""

    transactional_ddl: bool
    enforced_keys: bool
    temporary_tables: bool
    indexes: bool
    #: A Spark DataFrame API: Arrow tables load without pandas, and ``mapInArrow`` runs Python
    #: over Arrow batches on the engine's workers.
    spark_dataframes: bool


def capabilities(wh: Warehouse, /) -> Capabilities:
    """The :class:`Capabilities` of ``wh``'s engine (see the table in this module)."""
    name = wh.backend
    return Capabilities(
        transactional_ddl=name in _TRANSACTIONAL_DDL,
        enforced_keys=name in _ENFORCED_KEYS,
        temporary_tables=bool(getattr(wh.con, "supports_temporary_tables", False))
        and name not in _NO_TEMP_TABLES,
        indexes=name in _INDEXES,
        spark_dataframes=name in _SPARK_DATAFRAMES,
    )
