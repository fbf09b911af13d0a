"""The second line behind the engine's sandbox: functions and sources user SQL may not name.

Parsed with sqlglot (not string matching); a refused name stops the query before anything runs.
The engine's own sandbox (:mod:`sqltraits_kit.warehouse.sandbox`) is the first line.
"""

from __future__ import annotations

import re
from typing import Any

from sqltraits_kit.errors import ConfigError

__all__ = ["check_statement", "refused_function", "refused_source"]

# Functions that reach files, URLs, other databases, large objects or the server's settings.
# Exact names, prefixes and suffixes, compared in lower case; the union applies to every
# dialect (a name that means nothing to one engine is harmless to refuse there).
_REFUSED_EXACT = frozenset(
    {
        # DuckDB: files, URLs and SQL run from a string
        "glob",
        "sniff_csv",
        "query",
        "query_table",
        "getenv",
        "checkpoint",
        "force_checkpoint",
        "load_aws_credentials",
        "duckdb_secrets",
        "json_execute_serialized_sql",
        "from_substrait",
        "from_substrait_json",
        "st_read",
        "st_read_meta",
        "iceberg_metadata",
        "iceberg_snapshots",
        "parquet_metadata",
        "parquet_schema",
        "parquet_file_metadata",
        "parquet_kv_metadata",
        "parquet_bloom_probe",
        # PostgreSQL: server files, settings, other sessions, SQL run from a string
        "pg_stat_file",
        "pg_file_write",
        "pg_file_rename",
        "pg_file_unlink",
        "pg_file_sync",
        "pg_logdir_ls",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_notify",
        "pg_logical_emit_message",
        "pg_switch_wal",
        "pg_create_restore_point",
        "pg_promote",
        "set_config",
        "setval",
        "nextval",
        "loread",
        "lowrite",
        "query_to_xml",
        "query_to_xmlschema",
        "query_to_xml_and_xmlschema",
        "cursor_to_xml",
        "cursor_to_xmlschema",
    }
)
_REFUSED_PREFIXES = ("read_", "lo_", "pg_read_", "pg_ls_", "dblink", "httpfs")
_REFUSED_SUFFIXES = ("_scan", "_attach", "_query", "_execute")
# DuckDB reads a file named like a table: FROM 'x.csv', FROM "s3://bucket/x.parquet".
_FILE_LIKE = re.compile(
    r"([/\\:]|\.(csv|tsv|txt|parquet|json|jsonl|ndjson|gz|zst|xlsx|arrow|db|duckdb|sqlite)$)",
    re.IGNORECASE,
)


# Standard functions a suffix would catch by accident.
_ALLOWED = frozenset({"json_query"})


def _function_name(node: Any) -> str:
    from sqlglot import exp

    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    try:
        return str(node.sql_name()).lower()
    except Exception:  # a sqlglot node without a SQL name is no named function call
        return ""


def _is_refused(name: str) -> bool:
    if not name or name in _ALLOWED:
        return False
    return (
        name in _REFUSED_EXACT
        or name.startswith(_REFUSED_PREFIXES)
        or name.endswith(_REFUSED_SUFFIXES)
    )


def refused_function(statement: Any) -> str | None:
    """The first refused function a parsed sqlglot statement calls, or None."""
    from sqlglot import exp

    for node in statement.walk():
        if isinstance(node, exp.Func):
            name = _function_name(node)
            if _is_refused(name):
                return name
    return None


def refused_source(statement: Any) -> str | None:
    """The first table reference that names a file or URL (DuckDB reads those), or None."""
    from sqlglot import exp

    for node in statement.walk():
        is_named = isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier)
        if is_named and _FILE_LIKE.search(node.name or ""):
            return node.name
    return None


def check_statement(statement: Any) -> None:
    """Refuse (``ConfigError``, one line naming it) a function or source outside the sandbox."""
    name = refused_function(statement)
    if name is not None:
        raise ConfigError(
            f"the query calls {name}(), which reads or writes outside the warehouse's tables "
            "(files, URLs, large objects or server settings): refused, nothing was run"
        )
    source = refused_source(statement)
    if source is not None:
        raise ConfigError(
            f"the query reads {source!r}, which names a file or URL, not a table: refused, "
            "nothing was run"
        )
