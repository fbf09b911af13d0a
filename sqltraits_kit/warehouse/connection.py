"""One way into any warehouse: a URL (or the demo sample) -> a :class:`Warehouse` over Ibis."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from sqltraits_kit.errors import UnknownTableError, WarehouseConnectionError, WarehouseLockedError
from sqltraits_kit.settings import DEFAULT_SAMPLE_PATH

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd
    from ibis.backends import BaseBackend

__all__ = [
    "SAMPLE_TABLES",
    "Warehouse",
    "connect",
    "copy_tables",
    "redact_url",
]

#: The tables the demo sample holds, in a load order that keeps references valid.
SAMPLE_TABLES = (
    "accounts",
    "users",
    "order_completed",
    "tracks",
    "pages",
    "sample_truth",
    "sample_parameters",
)

_GRAINS = ("day", "week", "month")


def redact_url(url: str) -> str:
    """The URL with any password replaced, fit for logs and the UI."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:••••@{host}"))


def _sample_url(path: Path) -> str:
    return f"duckdb://{path.resolve()}"


@dataclass
class Warehouse:
    """An Ibis backend plus the handful of things the kit asks of every warehouse."""

    con: BaseBackend
    url: str
    read_only: bool = False
    _schema_cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def backend(self) -> str:
        """The Ibis backend name (``duckdb``, ``postgres``, ``pyspark``...)."""
        return self.con.name

    @property
    def display_url(self) -> str:
        return redact_url(self.url)

    def tables(self) -> list[str]:
        return sorted(self.con.list_tables())

    def has_table(self, name: str) -> bool:
        return name in self.con.list_tables()

    def table(self, name: str) -> ir.Table:
        """The table as an Ibis expression; a clear error names a table that is not there."""
        if not isinstance(name, str) or not name:
            raise UnknownTableError(f"table name must be a non-empty string, got {name!r}")
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

    def close(self) -> None:
        disconnect = getattr(self.con, "disconnect", None)
        if disconnect is not None:
            disconnect()


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc)
    return "lock" in text.lower() and ("Could not set lock" in text or "Conflicting lock" in text)


def connect(
    url: str | None = None,
    *,
    read_only: bool = False,
    sample_path: str | Path = DEFAULT_SAMPLE_PATH,
    sample_customers: int = 50_000,
    progress: Callable[[str, float], None] | None = None,
) -> Warehouse:
    """Connect to a warehouse by URL, or to the demo sample (built on first use) when url is None.

    ``duckdb:///path.duckdb``, ``postgres://user@host:5432/db`` and any URL Ibis understands.
    A DuckDB file is opened read-only when ``read_only``; if another process holds its write
    lock a :class:`WarehouseLockedError` says so.
    """
    import ibis

    if url is None or not url.strip():
        path = Path(sample_path)
        if not path.exists():
            from sqltraits_kit.warehouse.sample import build_sample

            build_sample(path, customers=sample_customers, progress=progress)
        url = _sample_url(path)
    url = url.strip()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if not scheme:
        raise WarehouseConnectionError(
            f"not a warehouse URL: {redact_url(url)!r} (expected e.g. duckdb:///file.duckdb "
            "or postgres://user@host:5432/db)"
        )
    kwargs: dict[str, Any] = {}
    if scheme == "duckdb":
        path_part = url.split("://", 1)[1]
        if read_only and path_part not in ("", "/", "/:memory:", ":memory:"):
            # As Ibis reads it: duckdb:///abs/path.duckdb and duckdb://relative/path.duckdb
            file = Path(path_part)
            if not file.exists():
                raise WarehouseConnectionError(f"DuckDB file not found: {file}")
            kwargs["read_only"] = True
    try:
        con = ibis.connect(url, **kwargs)
    except Exception as exc:
        if "different configuration" in str(exc):
            raise WarehouseLockedError(
                f"{redact_url(url)} is already open in this process in "
                f"{'read-write' if read_only else 'read-only'} mode; close that connection first "
                "(DuckDB allows one mode per file and process)."
            ) from None
        if _is_lock_error(exc):
            raise WarehouseLockedError(
                f"{redact_url(url)} is locked by another process (the app, a notebook or a "
                "scheduled `sqltraits` run). DuckDB allows one writer per file: stop the other "
                "process, or point one of them at a copy of the file."
            ) from None
        raise WarehouseConnectionError(
            f"could not connect to {redact_url(url)}: {type(exc).__name__}: "
            f"{str(exc).replace(url, redact_url(url))}"
        ) from None
    return Warehouse(con=con, url=url, read_only=read_only)


def copy_tables(
    source: Warehouse,
    dest: Warehouse,
    *,
    tables: Iterable[str] = SAMPLE_TABLES,
    batch_rows: int = 250_000,
    overwrite: bool = True,
    progress: Callable[[str, float], None] | None = None,
) -> dict[str, int]:
    """Copy tables between warehouses in Arrow batches (bounded memory); returns rows per table.

    Used to load the demo sample into PostgreSQL so the same code runs on both.
    """
    import pyarrow as pa

    report = progress or (lambda _msg, _frac: None)
    names = [n for n in tables if source.has_table(n)]
    copied: dict[str, int] = {}
    for i, name in enumerate(names):
        expr = source.table(name)
        total = int(expr.count().execute())
        schema = expr.schema()
        dest.con.create_table(name, schema=schema, overwrite=overwrite)
        done = 0
        for batch in expr.to_pyarrow_batches(chunk_size=batch_rows):
            if batch.num_rows:
                dest.con.insert(name, pa.Table.from_batches([batch]))
                done += batch.num_rows
            report(
                f"copying {name}: {done:,}/{total:,} rows", (i + done / max(total, 1)) / len(names)
            )
        copied[name] = done
    report("done", 1.0)
    return copied
