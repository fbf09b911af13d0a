"""A trait set's query: one read-only SELECT, checked with sqlglot and run through Ibis.

The checked statement as sqlglot writes it back is what runs, so what was checked is what is
executed; the warehouse's own sandbox (:mod:`sqltraits_kit.warehouse.sandbox`) is the first line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.warehouse.sandbox import QueryLimitError, check_statement, time_limit

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.warehouse import Warehouse

__all__ = ["check_read_only_query", "query_table"]

# Anything that writes, locks or changes the session: refused anywhere in the tree.
_FORBIDDEN_NODES = (
    "DDL",
    "DML",
    "Into",
    "Lock",
    "Command",
    "Drop",
    "Alter",
    "Set",
    "Pragma",
    "Transaction",
    "Commit",
    "Rollback",
    "Use",
    "Attach",
    "Detach",
    "TruncateTable",
)


_DIALECTS = {"postgres": "postgres", "duckdb": "duckdb", "pyspark": "spark"}


def _sqlglot_dialect(wh: Warehouse | None) -> str | None:
    if wh is None:
        return None
    return _DIALECTS.get(wh.backend, wh.backend)


def check_read_only_query(query: str, *, dialect: str | None = None) -> str:
    """Check that ``query`` is one SELECT (or WITH ... SELECT, or a set operation of SELECTs).

    Returns the statement as sqlglot writes it back for ``dialect``: that text, not the user's,
    is what runs, so what was checked is exactly what is executed. Refuses (``ConfigError``)
    several statements, INSERT/UPDATE/DELETE/MERGE (also inside a CTE), SELECT ... INTO,
    FOR UPDATE/SHARE, DDL and commands, and (a second line behind the engine's sandbox, see
    :mod:`sqltraits_kit.warehouse.sandbox`) known functions that reach files, URLs, large objects
    or server settings (``read_text``, ``read_csv``, ``glob``, ``lo_export``, ``set_config``...)
    and tables named like files. Give the kit a read-only warehouse user as well (Segment
    recommends the same for SQL Traits).
    """
    import sqlglot
    from sqlglot import exp

    if not isinstance(query, str) or not query.strip():
        raise ConfigError("the query is empty")
    try:
        statements = [s for s in sqlglot.parse(query, read=dialect) if s is not None]
    except sqlglot.errors.ParseError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "parse error"
        raise ConfigError(f"the query is not valid SQL: {first}") from None
    if len(statements) != 1:
        raise ConfigError(f"the query must be a single SELECT statement, found {len(statements)}")
    (statement,) = statements
    if not isinstance(statement, exp.Query):
        what = statement.key.upper()
        if isinstance(statement, exp.Command):
            what = str(statement.this).split()[0].upper()  # LOAD, CALL, ... as the user wrote it
        raise ConfigError(f"the query must be a SELECT (or WITH ... SELECT), not {what}")
    forbidden = tuple(getattr(exp, name) for name in _FORBIDDEN_NODES if hasattr(exp, name))
    for node in statement.walk():
        if isinstance(node, forbidden):
            what = {"into": "SELECT ... INTO", "lock": "FOR UPDATE/SHARE"}.get(
                node.key, node.key.upper()
            )
            raise ConfigError(f"the query must only read data; it contains {what}")
    check_statement(statement)
    return statement.sql(dialect=dialect)


def query_table(wh: Warehouse, query: str) -> ir.Table:
    """A SELECT as an Ibis table (``wh.con.sql``), checked by :func:`check_read_only_query`."""
    dialect = _sqlglot_dialect(wh)
    checked = check_read_only_query(query, dialect=dialect)
    try:
        with time_limit(wh):
            return wh.con.sql(checked, dialect=dialect)
    except QueryLimitError:
        raise
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "permission" in message.lower() or "disabled by configuration" in message.lower():
            message = f"refused by the warehouse's sandbox: {message}"
        raise ConfigError(f"the query failed in {wh.display_url}: {message}") from None
