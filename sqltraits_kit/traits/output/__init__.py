"""The output production table: staged, validated, swapped in atomically, every run kept.

A run is written to a staging table first and checked there (identifier present, not null, not
empty, unique; every trait non-null and finite; the caller's ``validate`` hook). Only then, in
one transaction, is the staging table's content appended to ``<output>_history`` and the staging
table renamed over the output table. DuckDB and PostgreSQL both have transactional DDL, so
readers see the old table or the new one, never none, and a run that fails at any point leaves
both tables as they were. On an engine without transactional DDL (Spark, Snowflake, BigQuery)
the output table is a view over one table per run, switched by a single ``CREATE OR REPLACE
VIEW`` once the run's table has passed the same checks (:mod:`.versions`).

Statements are built with sqlglot expressions (Ibis' own SQL layer) and quoted identifiers; no
SQL is formatted from user input, and table names must be lower snake_case.

API::

    write = write_output(wh, expr, table="churn_traits", id_column="user_id", run_id=run_id)
    runs(wh, "churn_traits")            # one OutputRun per run in the history, newest first
    rollback(wh, "churn_traits", run_id)  # the output table becomes that run's rows again
    score_run(wh, run_id)               # as of when it scored, with which models

The package: the score columns' names (:mod:`.columns`), table names and metadata
(:mod:`.tables`), the checks and statements of a staged run (:mod:`.staging`), the view over one
table per run (:mod:`.versions`), :func:`write_output` (:mod:`.write`), and the runs kept
(:mod:`.runs`).
"""

from __future__ import annotations

from sqltraits_kit.traits.output.columns import (
    LEGACY_COLUMNS,
    column_model,
    renamed_column,
    score_columns,
)
from sqltraits_kit.traits.output.manifest import SCORE_RUNS_TABLE, record_score_run, score_run
from sqltraits_kit.traits.output.runs import rollback, runs
from sqltraits_kit.traits.output.staging import Validator
from sqltraits_kit.traits.output.tables import (
    HISTORY_SUFFIX,
    METADATA_COLUMNS,
    OutputRun,
    OutputWrite,
    check_output_target,
    check_table_name,
    history_table,
    is_output_table,
    new_run_id,
    output_tables,
)
from sqltraits_kit.traits.output.write import write_output

__all__ = [
    "HISTORY_SUFFIX",
    "LEGACY_COLUMNS",
    "METADATA_COLUMNS",
    "SCORE_RUNS_TABLE",
    "OutputRun",
    "OutputWrite",
    "Validator",
    "check_output_target",
    "check_table_name",
    "column_model",
    "history_table",
    "is_output_table",
    "new_run_id",
    "output_tables",
    "record_score_run",
    "renamed_column",
    "rollback",
    "runs",
    "score_columns",
    "score_run",
    "write_output",
]
