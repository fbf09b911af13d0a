"""``write_output``: stage a run, check it, then append it to the history and swap it in: in one
transaction where the engine has transactional DDL, else by switching a view to the run's own
table (:mod:`.versions`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import ConfigError, DataError, SqlTraitsError
from sqltraits_kit.traits.output.staging import (
    STAGING_PREFIX,
    Validator,
    check_columns,
    check_kit_history,
    check_rows,
    drop,
    drop_quietly,
    history_plan,
    rename,
    run_validator,
)
from sqltraits_kit.traits.output.tables import OutputWrite, check_table_name, history_table
from sqltraits_kit.traits.output.versions import append_history, new_version, switch_view
from sqltraits_kit.warehouse.capabilities import capabilities
from sqltraits_kit.warehouse.transactions import in_transaction

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.warehouse import Warehouse

__all__ = ["write_output"]


def write_output(
    wh: Warehouse,
    data: ir.Table,
    /,
    *,
    table: str,
    id_column: str,
    run_id: str,
    validate: Validator | None = None,
    keep_history: bool = True,
    progress: Callable[[str, float], None] | None = None,
) -> OutputWrite:
    """Stage ``data``, check it, then append it to the history and swap it in, atomically.

    ``data`` holds ``id_column``, the trait columns and :data:`METADATA_COLUMNS`. ``validate``
    is called with the staged table; it fails the run by raising, or by returning an object
    whose ``ok`` is False (a :class:`~sqltraits_kit.traits.contract.ContractReport`). Any failure
    drops the staging table and leaves the output and history tables as they were.
    """
    started = time.perf_counter()
    report = progress or (lambda _m, _f: None)
    check_table_name(table)
    columns = list(data.columns)
    check_columns(columns, id_column)
    if wh.read_only:
        raise ConfigError(f"{wh.display_url} is open read-only: cannot write {table!r}")
    atomic_ddl = capabilities(wh).transactional_ddl
    # Without transactional DDL the staged table is the run's own version behind the view.
    staging = f"{STAGING_PREFIX}{uuid.uuid4().hex[:16]}" if atomic_ddl else new_version(table)
    history = history_table(table) if keep_history else None
    if history is not None and wh.has_table(history):  # before any work: not someone's table
        check_kit_history(history, wh.con.table(history).schema(), id_column)
    swapped = False
    try:
        report(f"writing the staging table for {table}", 0.0)
        try:
            wh.con.create_table(staging, data)
            # Read back: the schema as stored (e.g. PostgreSQL's timestamp precision).
            staged = wh.con.table(staging)
        except SqlTraitsError:
            raise
        except Exception as exc:
            raise DataError(
                f"could not write the staging table: {type(exc).__name__}: {exc}"
            ) from None
        report("validating the staged rows", 0.5)
        rows = check_rows(staged, id_column)
        run_validator(validate, staged)
        report(f"swapping {rows:,} rows into {table}", 0.8)
        try:
            if atomic_ddl:
                statements: list[Any] = []
                if history is not None:
                    statements = history_plan(wh, staged, history, id_column)
                in_transaction(wh, [*statements, drop(table), rename(staging, table)])
            else:
                if history is not None:
                    append_history(wh, staged, history, id_column)
                switch_view(wh, table, staging, columns)
        except SqlTraitsError:
            raise
        except Exception as exc:
            if atomic_ddl or history is None:
                kept = "the previous table and its history are unchanged"
            else:  # the history was appended to first (see .versions)
                kept = f"the previous table is unchanged ({history} may hold this run)"
            raise DataError(
                f"could not swap the new rows into {table!r} ({type(exc).__name__}: {exc}); {kept}"
            ) from None
        swapped = True
    finally:
        if not swapped:
            drop_quietly(wh, staging)
    report("done", 1.0)
    return OutputWrite(
        table=table,
        history_table=history,
        run_id=run_id,
        rows=rows,
        columns=tuple(columns),
        atomic=True,
        seconds=time.perf_counter() - started,
    )
