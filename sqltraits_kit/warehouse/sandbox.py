"""What user SQL may do: the engine's sandbox, the time and memory budget, and a second line.

A trait set's ``query`` (and ``--query``) is written by a user and runs inside statements the kit
builds (the contract's aggregates, the Preview, the sync's diff joins it with the kit's state
tables), so it runs on the warehouse's own connection. The engine enforces the sandbox there:

* **DuckDB**: the warehouse's database instance is locked down right after it is opened:
  ``enable_external_access = false`` (no file, URL, ``ATTACH``, ``COPY``, ``INSTALL``/``LOAD``),
  no extension auto-install/auto-load, a ``memory_limit``, then ``lock_configuration = true`` so
  no later statement can undo it. DuckDB's settings are per database instance, not per
  connection, and a second instance cannot join the user's query with the kit's tables in one
  statement, so the lock covers the whole instance. The one directory it may still read is the
  warehouse's private scratch folder (``Warehouse.scratch_dir``), where scoring spills Parquet.
  The kit's own work that needs files (building the sample, ``sqltraits load``) opens its own
  connection.
* **PostgreSQL**: every statement on the kit's session has a ``statement_timeout``, and
  :func:`read_only_transaction` runs reads in a ``READ ONLY`` transaction with ``SET LOCAL
  statement_timeout``. The role the kit logs in as should be read-only on the sources and write
  only its own schema (README, "Deploying for a team"): the server, not the kit, is the real guard.
* **Both**: :func:`refused_function` names a known file, network, large-object or
  configuration function in a parsed query (sqlglot, not string matching); the query is refused
  before anything runs. And :func:`time_limit` interrupts whatever runs past the budget from a
  timer thread (DuckDB ``interrupt()``, PostgreSQL's cancel request).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.settings import Settings
from sqltraits_kit.warehouse.sql_guard import check_statement, refused_function, refused_source

# The functions take a ``Warehouse`` (typed Any: connection.py imports this module).
Warehouse = Any

__all__ = [
    "Limits",
    "QueryLimitError",
    "check_statement",
    "lock_down_duckdb",
    "query_budget",
    "read_only_transaction",
    "refused_function",
    "refused_source",
    "setup_postgres",
    "time_limit",
    "time_limited",
]

P = ParamSpec("P")
R = TypeVar("R")


class QueryLimitError(ConfigError):
    """A statement ran past the time budget or the memory budget and was stopped.

    A :class:`ConfigError` (CLI exit 2): the user's query asks for more than the operator's
    budget, and the fix is in the query or the settings.
    """


@dataclass(frozen=True, kw_only=True)
class Limits:
    """The budget of one statement that runs user SQL: seconds (0 = none) and DuckDB memory."""

    timeout_s: float = 120.0
    memory_limit: str = "2GB"

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Limits:
        s = settings if settings is not None else Settings.from_env()
        return cls(timeout_s=float(s.query_timeout_s), memory_limit=str(s.query_memory_limit))

    def describe_time(self) -> str:
        return f"{self.timeout_s:g} s (SQLTRAITS_QUERY_TIMEOUT_S)"


# --------------------------------------------------------------------------- engine sandbox


def new_scratch_dir() -> str:
    """A private folder for the kit's spill files: the only one a locked DuckDB may read.

    Removed when the process exits, not when a warehouse closes: another warehouse of this
    process may share the locked DuckDB instance that allows it (see :func:`join_locked_duckdb`).
    """
    path = tempfile.mkdtemp(prefix="sqltraits_scratch_")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


#: DuckDB's answer to a SET on a locked instance.
LOCKED_MESSAGE = "the configuration has been locked"


def is_locked(raw: Any) -> bool:
    """Whether this DuckDB connection's database instance is already locked down."""
    return bool(raw.execute("SELECT current_setting('lock_configuration')").fetchone()[0])


def join_locked_duckdb(file: Any, *, read_only: bool) -> Any:
    """A new connection to a DuckDB file this process already opened and locked down.

    DuckDB keeps one database instance per file and process, so a second warehouse on the same
    file (another app session, a page's cached connection) shares the first one's locked
    configuration, and Ibis' own per-connection SETs would fail. The instance-wide settings
    they make (UTC, no replacement scans) were made GLOBAL before the lock
    (:func:`lock_down_duckdb`); they are checked here instead of set.
    """
    import duckdb

    raw = duckdb.connect(str(file), read_only=read_only)
    tz, replacements = raw.execute(
        "SELECT current_setting('TimeZone'), current_setting('python_enable_replacements')"
    ).fetchone()
    if not is_locked(raw) or tz != "UTC" or replacements:
        raw.close()
        raise RuntimeError(
            f"the DuckDB instance of {file} is locked without the kit's settings "
            f"(TimeZone {tz!r}, replacement scans {replacements!r})"
        )
    return raw


def allowed_scratch_dir(raw: Any) -> str | None:
    """The scratch folder a locked instance allows (the one the kit gave it), if any."""
    dirs = raw.execute("SELECT current_setting('allowed_directories')").fetchone()[0] or []
    ours = [str(d).rstrip("/") for d in dirs if "sqltraits_scratch_" in str(d)]
    return ours[0] if ours else None


def lock_down_duckdb(
    raw: Any, *, scratch_dir: str, limits: Limits, keep_memory_limit: bool = False
) -> None:
    """Apply the sandbox to a DuckDB database instance, then lock its configuration.

    ``raw`` is the ``duckdb.DuckDBPyConnection`` (``ibis_backend.con``); Ibis' own settings
    (time zone, replacement scans) must already be made, since nothing can be set afterwards.
    ``keep_memory_limit``: the operator set one in the URL (options they allowed); keep it.
    """
    scratch = scratch_dir.rstrip("/") + "/"
    statements = [
        # Made instance-wide so that later connections to the same file in this process, which
        # can no longer SET anything, get them too (join_locked_duckdb checks them).
        "SET GLOBAL TimeZone = 'UTC'",
        "SET GLOBAL python_enable_replacements = false",
        "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false",
        # A list literal of one quoted path the kit generated itself (mkdtemp), not user input.
        "SET allowed_directories = [" + _duck_string(scratch) + "]",
        "SET enable_external_access = false",
        "SET lock_configuration = true",
    ]
    if not keep_memory_limit:
        statements.insert(-1, "SET memory_limit = " + _duck_string(limits.memory_limit))
    for statement in statements:
        raw.execute(statement)


def _duck_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def setup_postgres(con: Any, *, limits: Limits) -> None:
    """The session's statement timeout: every statement the kit sends, user SQL or not."""
    import psycopg.sql as psql

    raw = getattr(con, "con", None)
    if raw is None or limits.timeout_s <= 0:
        return
    ms = max(int(limits.timeout_s * 1000), 1)
    with raw.cursor() as cur:
        cur.execute(psql.SQL("SET statement_timeout = {}").format(psql.Literal(ms)))
    if not raw.autocommit:
        raw.commit()


@contextlib.contextmanager
def read_only_transaction(wh: Warehouse, *, limits: Limits | None = None) -> Iterator[None]:
    """Run the block's reads in one ``READ ONLY`` transaction (PostgreSQL; elsewhere a no-op).

    Ibis runs each PostgreSQL statement in ``connection.transaction()``, which becomes a
    savepoint inside this outer transaction, so every statement of the block is read-only and
    bounded by ``SET LOCAL statement_timeout``; the transaction is rolled back at the end.
    """
    raw = getattr(wh.con, "con", None)
    if wh.backend != "postgres" or raw is None:
        yield
        return
    import psycopg.sql as psql

    lim = limits or wh.limits
    with raw.transaction(force_rollback=True), raw.cursor() as cur:
        cur.execute("SET TRANSACTION READ ONLY")
        if lim.timeout_s > 0:
            ms = max(int(lim.timeout_s * 1000), 1)
            cur.execute(psql.SQL("SET LOCAL statement_timeout = {}").format(psql.Literal(ms)))
        yield


# --------------------------------------------------------------------------- time limit


def _interrupter(wh: Warehouse) -> Any:
    raw = getattr(wh.con, "con", None)
    if raw is None:
        return None
    if wh.backend == "duckdb":
        return raw.interrupt
    if wh.backend == "postgres":
        return getattr(raw, "cancel_safe", None) or raw.cancel
    return None


_LIMIT_HINTS = (
    "interrupt",
    "statement timeout",
    "canceling statement due to user request",
    "querycanceled",
)


def is_limit_error(exc: BaseException) -> str | None:
    """``"time"`` or ``"memory"`` when ``exc`` is the engine stopping a statement, else None."""
    text = f"{type(exc).__name__}: {exc}".lower()
    if "out of memory" in text or "outofmemory" in text:
        return "memory"
    if any(hint in text for hint in _LIMIT_HINTS):
        return "time"
    return None


def limit_message(kind: str, limits: Limits) -> str:
    if kind == "memory":
        return (
            f"the query was stopped: it needed more than the memory budget of "
            f"{limits.memory_limit} (SQLTRAITS_QUERY_MEMORY_LIMIT; SQLTRAITS_SYNC_MEMORY_LIMIT on "
            "the connection a publish runs on); narrow it (fewer rows, no cross join) or ask the "
            "operator for a larger budget"
        )
    return (
        f"the query was stopped after the time budget of {limits.describe_time()}; narrow it "
        "(fewer rows, no cross join) or ask the operator for a longer budget"
    )


@contextlib.contextmanager
def time_limit(wh: Warehouse, *, limits: Limits | None = None) -> Iterator[None]:
    """Interrupt whatever the warehouse runs once the block has taken longer than the budget.

    The block's engine error becomes a :class:`QueryLimitError` with one clear line, and so does
    DuckDB's out-of-memory error. Nested blocks share the outermost budget.
    """
    lim = limits or wh.limits
    me = threading.get_ident()
    if getattr(wh, "_budget_active", None) == me:  # nested in this thread: the outer one counts
        yield
        return
    interrupt = _interrupter(wh)
    fired = threading.Event()

    def stop() -> None:
        fired.set()
        if interrupt is not None:
            with contextlib.suppress(Exception):
                interrupt()

    timer = threading.Timer(lim.timeout_s, stop) if lim.timeout_s > 0 else None
    wh._budget_active = me
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        yield
    except QueryLimitError:
        raise
    except Exception as exc:
        kind = "time" if fired.is_set() else is_limit_error(exc)
        if kind is None:
            raise
        raise QueryLimitError(limit_message(kind, lim)) from None
    finally:
        wh._budget_active = None
        if timer is not None:
            timer.cancel()


def time_limited(func: Callable[P, R]) -> Callable[P, R]:
    """Run ``func(wh, ...)`` under :func:`time_limit` of its first argument, the warehouse."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with time_limit(args[0]):  # type: ignore[arg-type]
            return func(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def query_budget(wh: Warehouse) -> Iterator[None]:
    """Reads of user SQL, sandboxed: :func:`read_only_transaction` + :func:`time_limit`.

    For blocks that only read (a validation, a Preview's queries) once the user's query has been
    resolved: on PostgreSQL resolving it creates a temporary view, which a read-only transaction
    refuses, so call :func:`~sqltraits_kit.traits.traitset.resolve` before the block.
    """
    with read_only_transaction(wh), time_limit(wh):
        yield
