"""One way into any warehouse: a URL (or the demo sample) -> a :class:`Warehouse` over Ibis."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import (
    ConfigError,
    UnknownTableError,
    WarehouseConnectionError,
)
from sqltraits_kit.settings import DEFAULT_SAMPLE_PATH, Settings
from sqltraits_kit.warehouse.sandbox import (
    LOCKED_MESSAGE,
    Limits,
    allowed_scratch_dir,
    is_locked,
    join_locked_duckdb,
    lock_down_duckdb,
    new_scratch_dir,
    setup_postgres,
)
from sqltraits_kit.warehouse.urls import (
    check_user_warehouse_url,
    connect_error,
    duckdb_target,
    missing_file,
    options_refused,
    redact_url,
    scheme_of,
    scrub,
    url_secrets,
)

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd
    from ibis.backends import BaseBackend

__all__ = [
    "Warehouse",
    "check_user_warehouse_url",
    "connect",
    "duckdb_cursor",
    "redact_url",
    "scrub",
    "url_secrets",
]

_GRAINS = ("day", "week", "month")


def _sample_url(path: Path) -> str:
    return f"duckdb://{path.resolve()}"


@dataclass(repr=False)
class Warehouse:
    """An Ibis backend plus the handful of things the kit asks of every warehouse."""

    con: BaseBackend
    url: str
    read_only: bool = False
    #: The budget of statements that run user SQL (see :mod:`~sqltraits_kit.warehouse.sandbox`).
    limits: Limits = field(default_factory=Limits)
    #: False: a DuckDB file is open only inside :meth:`reading` / :meth:`writing` blocks, so an
    #: idle app does not hold the file's lock against a scheduled run.
    hold: bool = True
    #: The only folder a locked-down DuckDB may read: the kit's spill files (scoring).
    scratch_dir: str | None = None
    _schema_cache: dict[str, Any] = field(default_factory=dict, repr=False)
    _file: Path | None = field(default=None, repr=False)
    _config: dict[str, Any] = field(default_factory=dict, repr=False)
    _sandbox: bool = field(default=True, repr=False)
    _mode: str | None = field(default=None, repr=False)  # "ro", "rw" or None (released)
    _depth: int = field(default=0, repr=False)
    _budget_active: int | None = field(default=None, repr=False)  # thread of the budget
    _seen_tables: set[str] | None = field(default=None, repr=False)  # see remembering_tables

    @property
    def backend(self) -> str:
        """The Ibis backend name (``duckdb``, ``postgres``, ``pyspark``...)."""
        return self.con.name

    @property
    def display_url(self) -> str:
        return redact_url(self.url)

    def __repr__(self) -> str:  # never the password: a repr lands in logs and tracebacks
        mode = "read-only" if self.read_only else "read-write"
        return f"Warehouse({self.display_url!r}, {self.backend}, {mode})"

    def tables(self) -> list[str]:
        return sorted(self.con.list_tables())

    def has_table(self, name: str) -> bool:
        """Whether ``name`` exists. Inside :meth:`remembering_tables` a table seen once is taken
        to exist without listing again; a name not seen is always listed afresh."""
        if self._seen_tables is None:
            return name in self.con.list_tables()
        if name not in self._seen_tables:
            self._seen_tables.update(self.con.list_tables())
        return name in self._seen_tables

    @contextlib.contextmanager
    def remembering_tables(self) -> Iterator[None]:
        """Within the block, :meth:`has_table` lists the tables once per new name, not per call.

        For one publish run, which asks about the same dozen tables ~20 times (each a listing
        of every table: 0.5 s a call on Spark). Only tables that exist are remembered, so a table
        created in the block is found at once; one dropped in the block must be
        :meth:`forget_table`-ed (the run drops only its own scratch table)."""
        if self._seen_tables is not None:  # nested: the outer block keeps the memory
            yield
            return
        self._seen_tables = set()
        try:
            yield
        finally:
            self._seen_tables = None

    def forget_table(self, name: str) -> None:
        """``name`` was dropped: :meth:`has_table` must list again before saying it exists."""
        if self._seen_tables is not None:
            self._seen_tables.discard(name)

    def table(self, name: str) -> ir.Table:
        """The table as an Ibis expression; a clear error names a table that is not there."""
        if not isinstance(name, str) or not name:
            raise UnknownTableError(f"table name must be a non-empty string, got {name!r}")
        if "." not in name:
            # One catalog lookup, not a listing of every table (0.5 s a call on Spark).
            with contextlib.suppress(Exception):
                return self.con.table(name)
        available = self.con.list_tables()
        if name not in available:
            hint = ", ".join(sorted(available)[:20]) or "none"
            raise UnknownTableError(f"table {name!r} not found in {self.display_url} (has: {hint})")
        return self.con.table(name)

    def column(self, table: ir.Table, name: str, *, table_name: str = "table") -> ir.Column:
        """A column by name with an error that names the table and the columns it does have."""
        if name not in table.columns:
            raise UnknownTableError(
                f"column {name!r} not found in {table_name} (columns: {', '.join(table.columns)})"
            )
        return table[name]

    def describe(self, name: str) -> list[tuple[str, str]]:
        schema = self.table(name).schema()
        return [(col, str(dtype)) for col, dtype in schema.items()]

    def row_counts(self, names: Iterable[str] | None = None) -> dict[str, int]:
        names = list(self.tables() if names is None else names)
        return {name: int(self.table(name).count().execute()) for name in names}

    def preview(self, name: str, *, limit: int = 100) -> pd.DataFrame:
        return self.table(name).limit(limit).to_pandas()

    def activity_over_time(
        self,
        *,
        tables: Iterable[str] = ("order_completed", "tracks", "pages"),
        timestamp: str = "timestamp",
        grain: str = "week",
    ) -> pd.DataFrame:
        """Event counts per period and table, counted in the warehouse (only the counts leave)."""
        import ibis

        if grain not in _GRAINS:
            raise ValueError(f"grain must be one of {_GRAINS}, got {grain!r}")
        unit = {"day": "D", "week": "W", "month": "M"}[grain]
        parts = []
        for name in tables:
            if not self.has_table(name):
                continue
            t = self.table(name)
            ts = self.column(t, timestamp, table_name=name)
            parts.append(
                t.group_by(period=ts.truncate(unit))
                .aggregate(events=ibis._.count())
                .mutate(table=ibis.literal(name))
            )
        if not parts:
            raise UnknownTableError(f"none of the tables {list(tables)} exist")
        expr = ibis.union(*parts).order_by(["period", "table"])
        return expr.to_pandas()

    # ---- opening and releasing a DuckDB file (the app holds no lock while idle)

    def _after_open(self) -> None:
        """Apply the sandbox and the session limits to a freshly opened connection."""
        if self.backend == "duckdb" and self._sandbox and is_locked(self.con.con):
            # Joined an instance this process locked already: its sandbox is in force.
            self.scratch_dir = allowed_scratch_dir(self.con.con) or self.scratch_dir
        elif self.backend == "duckdb" and self._sandbox:
            if self.scratch_dir is None:
                self.scratch_dir = new_scratch_dir()
            lock_down_duckdb(
                self.con.con,
                scratch_dir=self.scratch_dir,
                limits=self.limits,
                keep_memory_limit="memory_limit" in self._config,
            )
        elif self.backend == "postgres":
            setup_postgres(self.con, limits=self.limits)

    def _open(self, *, read_only: bool) -> None:
        if self._file is None:
            return
        mode = "ro" if read_only else "rw"
        if self._mode == mode:
            return
        self._release_file()
        try:
            self.con.do_connect(database=self._file, read_only=read_only, **self._config)
        except Exception as exc:
            if LOCKED_MESSAGE not in str(exc):
                raise connect_error(exc, self.url, read_only=read_only) from None
            try:
                self.con.con = join_locked_duckdb(self._file, read_only=read_only)
                self.con._record_batch_readers_consumed = {}
            except Exception as again:
                raise connect_error(again, self.url, read_only=read_only) from None
        self._mode = mode
        self._after_open()

    def _release_file(self) -> None:
        if self._mode is not None:
            with contextlib.suppress(Exception):
                self.con.disconnect()
            self._mode = None

    def release(self) -> None:
        """Close a DuckDB file until the next :meth:`reading` or :meth:`writing` block."""
        if self._file is not None and self._depth == 0:
            self._release_file()

    @contextlib.contextmanager
    def reading(self) -> Iterator[Warehouse]:
        """The file open (in this warehouse's mode) for the block; released after if not held."""
        if self._file is not None and self._mode is None:
            self._open(read_only=self.read_only)
        self._depth += 1
        try:
            yield self
        finally:
            self._depth -= 1
            if not self.hold and self._depth == 0:
                self._release_file()

    @contextlib.contextmanager
    def writing(self) -> Iterator[Warehouse]:
        """The DuckDB file open read-write for the block, then back to read-only (or released).

        Expressions built before the block stay usable: the Ibis backend object is the same,
        only its database connection is reopened. A writer in another process gets the lock
        whenever no block is running here (with ``hold=False``) or this one is read-only and
        released. Other engines: the block runs as is.
        """
        if self._file is None or not self.read_only:
            with self.reading():
                yield self
            return
        previous = self._mode
        self._open(read_only=False)
        self.read_only = False
        self._depth += 1
        try:
            yield self
        finally:
            self._depth -= 1
            self.read_only = True
            if previous is not None or self.hold:
                self._open(read_only=True)
            else:
                self._release_file()

    def close(self) -> None:
        disconnect = getattr(self.con, "disconnect", None)
        if disconnect is not None and (self._file is None or self._mode is not None):
            disconnect()
        self._mode = None  # the scratch folder goes at process exit (shared, see sandbox)


def connect(
    url: str | None = None,
    *,
    read_only: bool = False,
    create: bool = False,
    hold: bool = True,
    sandbox: bool = True,
    settings: Settings | None = None,
    sample_path: str | Path = DEFAULT_SAMPLE_PATH,
    sample_customers: int = 50_000,
    progress: Callable[[str, float], None] | None = None,
) -> Warehouse:
    """Connect to a warehouse by URL, or to the demo sample (built on first use) when url is None.

    ``duckdb:///path.duckdb``, ``postgres://user@host:5432/db`` and any URL Ibis understands.
    A DuckDB file is opened read-only when ``read_only``; if another process holds its write
    lock a :class:`WarehouseLockedError` says so. A DuckDB file that does not exist is an error
    unless ``create`` (a typo must not make an empty warehouse). ``hold=False`` keeps the file
    closed outside :meth:`Warehouse.reading` / :meth:`Warehouse.writing` blocks (the app).

    The connection runs user SQL in the sandbox of :mod:`~sqltraits_kit.warehouse.sandbox`
    with the budget of ``settings`` (default: from the environment); ``sandbox=False`` is for
    the kit's own work that needs files, never for user SQL. DuckDB URL options are refused
    unless ``settings.allow_warehouse_url_options``.
    """
    import ibis

    if settings is None:
        try:
            settings = Settings.from_env()
        except ValueError as exc:  # a malformed SQLTRAITS_* variable: the operator's to fix
            raise ConfigError(str(exc)) from None
    if url is None or not url.strip():
        path = Path(sample_path)
        if not path.exists():
            from sqltraits_kit.warehouse.sample import build_sample

            build_sample(path, customers=sample_customers, progress=progress)
        url = _sample_url(path)
    url = url.strip()
    scheme = scheme_of(url)
    if not scheme:
        raise WarehouseConnectionError(
            f"not a warehouse URL: {redact_url(url)!r} (expected e.g. duckdb:///file.duckdb "
            "or postgres://user@host:5432/db)"
        )
    kwargs: dict[str, Any] = {}
    file: Path | None = None
    if scheme == "duckdb":
        target, query = duckdb_target(url)
        if query and not settings.allow_warehouse_url_options:
            raise options_refused(query)
        if isinstance(target, Path):
            file = target
            if not file.exists() and (read_only or not create):
                raise missing_file(file)
            kwargs["read_only"] = read_only
    try:
        con = ibis.connect(url, **kwargs)
    except Exception as exc:
        if file is None or LOCKED_MESSAGE not in str(exc):
            raise connect_error(exc, url, read_only=read_only) from None
        con = _join(file, url, read_only=read_only)
    wh = Warehouse(
        con=con,
        url=url,
        read_only=read_only,
        limits=Limits.from_settings(settings),
        hold=hold,
        _file=file.absolute() if file is not None else None,
        _config=_duckdb_config(con, file),
        _sandbox=sandbox,
        _mode=("ro" if read_only else "rw") if file is not None else None,
    )
    try:
        wh._after_open()
    except Exception:
        wh.close()
        raise
    if not hold:
        wh.release()
    return wh


def duckdb_cursor(wh: Warehouse) -> Warehouse:
    """A second DuckDB connection (a cursor) to ``wh``'s database, for another thread.

    On an instance the sandbox locked, Ibis' own connect-time SETs would fail; the settings they
    make were made instance-wide before the lock (see :func:`join_locked_duckdb`).
    """
    import ibis

    raw = wh.con.con.cursor()
    if not is_locked(raw):
        return Warehouse(con=ibis.duckdb.from_connection(raw), url=wh.url)
    from ibis.backends.duckdb import Backend

    backend = Backend()
    backend.con = raw
    backend._can_reconnect = False
    backend._record_batch_readers_consumed = {}
    return Warehouse(con=backend, url=wh.url)


def _join(file: Path, url: str, *, read_only: bool) -> Any:
    """An Ibis backend on a DuckDB file this process already opened and locked down."""

    try:
        raw = join_locked_duckdb(file, read_only=read_only)
    except Exception as exc:
        raise connect_error(exc, url, read_only=read_only) from None
    from ibis.backends.duckdb import Backend

    backend = Backend()
    backend.con = raw
    backend._can_reconnect = False
    # What Ibis' _post_connect sets besides the two settings (checked by join_locked_duckdb).
    backend._record_batch_readers_consumed = {}
    return backend


def _duckdb_config(con: Any, file: Path | None) -> dict[str, Any]:
    """The DuckDB config a reopen passes again (URL options the operator allowed)."""
    if file is None:
        return {}
    kwargs = dict(getattr(con, "_con_kwargs", {}) or {})
    for key in ("database", "read_only", "extensions"):
        kwargs.pop(key, None)
    return kwargs


def spark_backend(wh: Warehouse) -> Warehouse:
    """Another Ibis backend over ``wh``'s Spark session (for another thread: a Spark session is
    shared by every thread of a process, an Ibis backend object is not)."""
    import ibis

    return Warehouse(con=ibis.pyspark.connect(wh.con._session), url=wh.url)


def second_connection(wh: Warehouse) -> Warehouse:
    """A connection of its own to ``wh``'s database, for another thread (Ibis connections are
    not shared between threads): the lease's heartbeat, the publish's page reader."""
    if wh.backend == "duckdb":
        # A cursor is a new connection to the same database (in-memory ones included).
        return duckdb_cursor(wh)
    if wh.backend == "pyspark":
        # One Spark session per process, safe to share between threads: a backend of its own.
        return spark_backend(wh)
    return connect(wh.url)


def close_second(own: Warehouse, wh: Warehouse) -> None:
    """Close a :func:`second_connection` of ``wh`` (a Spark one shares the session: left open)."""
    if own is not wh and own.backend != "pyspark":
        with contextlib.suppress(Exception):
            own.close()
