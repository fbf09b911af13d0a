"""Running sqlglot-built statements on any Ibis backend, alone or in one transaction.

Ibis has no UPDATE/DELETE and its ``create_table(overwrite=True)`` is a drop + rename in two
statements on DuckDB, so the output table and the sync state swap tables here, in one transaction
(DuckDB and PostgreSQL have transactional DDL). Statements are sqlglot expressions rendered in the
warehouse's dialect: never strings built from user input.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqltraits_kit.warehouse import Warehouse

__all__ = ["execute", "in_transaction"]


def execute(wh: Warehouse, statement: Any) -> None:
    """Run one sqlglot statement in the warehouse's dialect."""
    result = wh.con.raw_sql(statement.sql(dialect=wh.con.dialect))
    # PostgreSQL hands back a cursor to close; DuckDB hands back the connection itself.
    if result is not None and result is not getattr(wh.con, "con", None):
        close = getattr(result, "close", None)
        if close is not None:
            close()


def in_transaction(wh: Warehouse, statements: Sequence[Any]) -> None:
    """Run ``statements`` all or nothing; the error is re-raised after the rollback."""
    import sqlglot.expressions as sge

    execute(wh, sge.Transaction())
    try:
        for statement in statements:
            execute(wh, statement)
        execute(wh, sge.Commit())
    except BaseException:
        with contextlib.suppress(Exception):
            execute(wh, sge.Rollback())
        raise
