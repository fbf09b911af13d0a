"""Warehouse URLs: reading one, redacting its credentials, checking one a user typed, and the
one-line errors a failed connect becomes (with the driver to install or the scheme meant)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from sqltraits_kit.errors import ConfigError, WarehouseConnectionError, WarehouseLockedError
from sqltraits_kit.settings import Settings

_MASK = "••••"
# Query parameters that carry a credential (libpq's password, tokens of cloud warehouses).
_SECRET_PARAMS = ("password", "pass", "pwd", "secret", "token", "key", "credential")


def _secret_param(name: str) -> bool:
    low = name.lower()
    return any(word in low for word in _SECRET_PARAMS)


def url_secrets(url: str) -> list[str]:
    """The credential values in a URL (its password and secret-looking query parameters)."""
    try:
        parts = urlsplit(url)
        found = [parts.password] if parts.password else []
        found += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if _secret_param(k)]
    except ValueError:
        return []
    return [v for v in found if v]


def redact_url(url: str) -> str:
    """The URL with its password and secret query parameters replaced, fit for logs and the UI."""
    try:
        parts = urlsplit(url)
        password = parts.password
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return "<unreadable URL>"
    out = url
    if password is not None:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        user = parts.username or ""
        out = urlunsplit(parts._replace(netloc=f"{user}:{_MASK}@{host}"))
    if any(_secret_param(k) for k, _ in query):
        # Rebuild only the query part: urlunsplit would drop the empty host of duckdb:///...
        base, _, rest = out.partition("?")
        _, hash_sign, fragment = rest.partition("#")
        masked = "&".join(
            f"{quote(k)}={_MASK if _secret_param(k) else quote(v, safe='/:')}" for k, v in query
        )
        out = f"{base}?{masked}{hash_sign}{fragment}"
    return out


def scrub(text: str, url: str) -> str:
    """``text`` (an engine's error message, say) with the URL and its credentials redacted."""
    out = text.replace(url, redact_url(url))
    for secret in url_secrets(url):
        out = out.replace(secret, _MASK)
    return out


def is_lock_error(exc: BaseException) -> bool:
    text = str(exc)
    return "lock" in text.lower() and ("Could not set lock" in text or "Conflicting lock" in text)


def connect_error(exc: BaseException, url: str, *, read_only: bool) -> Exception:
    if "different configuration" in str(exc):
        return WarehouseLockedError(
            f"{redact_url(url)} is already open in this process in "
            f"{'read-write' if read_only else 'read-only'} mode; close that connection first "
            "(DuckDB allows one mode per file and process)."
        )
    if is_lock_error(exc):
        return WarehouseLockedError(
            f"{redact_url(url)} is locked by another process (the app, a notebook or a "
            "scheduled `sqltraits` run). DuckDB allows one writer per file: stop the other "
            "process, or point one of them at a copy of the file."
        )
    scheme = scheme_of(url)
    if isinstance(exc, ModuleNotFoundError):
        extra = BACKEND_EXTRAS.get(scheme, scheme or "the backend")
        return WarehouseConnectionError(
            f"{redact_url(url)}: the {scheme or 'warehouse'} driver is not installed; install it "
            f"with: pip install 'ibis-framework[{extra}]'"
        )
    if isinstance(exc, ValueError) and "know how to connect" in str(exc):
        import difflib

        near = difflib.get_close_matches(scheme, sorted(BACKEND_EXTRAS), n=1)
        hint = f"did you mean {near[0]}://? " if near else ""
        return WarehouseConnectionError(
            f"{redact_url(url)}: unknown warehouse type {scheme!r}; {hint}URLs start with "
            "duckdb://, postgres://, snowflake://, bigquery://, pyspark://, ... (Ibis URLs)"
        )
    return WarehouseConnectionError(
        f"could not connect to {redact_url(url)}: {type(exc).__name__}: {scrub(str(exc), url)}"
    )


#: URL scheme -> the ibis-framework extra that installs its driver.
BACKEND_EXTRAS = {
    "duckdb": "duckdb",
    "postgres": "postgres",
    "postgresql": "postgres",
    "snowflake": "snowflake",
    "bigquery": "bigquery",
    "mysql": "mysql",
    "mssql": "mssql",
    "trino": "trino",
    "databricks": "databricks",
    "pyspark": "pyspark",
    "clickhouse": "clickhouse",
    "risingwave": "risingwave",
    "oracle": "oracle",
}


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def duckdb_target(url: str) -> tuple[Path | str, str]:
    """The database a ``duckdb://`` URL names (a path, ``:memory:`` or ``md:...``) and options.

    Read as Ibis reads it: ``duckdb:///abs/path.duckdb`` and ``duckdb://relative/path.duckdb``.
    """
    rest = url.split("://", 1)[1]
    path_part, _, query = rest.partition("?")
    if path_part in ("", "/", "/:memory:", ":memory:"):
        return ":memory:", query
    if path_part.startswith(("md:", "motherduck:")):
        return path_part, query
    if path_part.startswith("//"):  # duckdb:////abs/path: one leading slash is enough
        path_part = "/" + path_part.lstrip("/")
    return Path(path_part), query


def missing_file(file: Path) -> WarehouseConnectionError:
    return WarehouseConnectionError(
        f"no such warehouse file {file}; create one with `sqltraits sample` or pass create=True"
    )


def options_refused(query: str) -> WarehouseConnectionError:
    names = ", ".join(sorted({k for k, _ in parse_qsl(query, keep_blank_values=True)})) or query
    return WarehouseConnectionError(
        f"warehouse URL options ({names}) change what the engine may do and are turned off; "
        "the operator can allow them with SQLTRAITS_ALLOW_WAREHOUSE_URL_OPTIONS=true"
    )


def check_user_warehouse_url(url: str, *, settings: Settings, local: bool | None = None) -> str:
    """Check a warehouse URL a user typed (the app's Data page); returns it stripped.

    Refused, with one line saying why: typed URLs when the operator turned them off
    (``allow_user_warehouse_urls``; unset means allowed only when ``local``, the default),
    engines other than DuckDB and PostgreSQL, URL options (``?...``) unless
    ``allow_warehouse_url_options``, MotherDuck, and a DuckDB file that does not exist (a typo
    must not create one).
    """
    if not settings.user_warehouse_urls_allowed(local=True if local is None else local):
        raise ConfigError(
            "typed warehouse URLs are turned off on this server; choose one of the warehouses "
            "the operator configured (SQLTRAITS_ALLOW_USER_WAREHOUSE_URLS)"
        )
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("enter a warehouse URL, e.g. duckdb:///data/warehouse.duckdb")
    url = url.strip()
    scheme = scheme_of(url)
    if scheme not in ("duckdb", "postgres", "postgresql"):
        raise ConfigError(
            f"not a DuckDB or PostgreSQL URL: {redact_url(url)!r} (expected duckdb:///file.duckdb "
            "or postgres://user@host:5432/db)"
        )
    query = urlsplit(url).query if scheme != "duckdb" else duckdb_target(url)[1]
    if query and not settings.allow_warehouse_url_options:
        raise options_refused(query)
    if scheme == "duckdb":
        target, _ = duckdb_target(url)
        if isinstance(target, str) and target != ":memory:":
            raise ConfigError(f"{target.split(':', 1)[0]} databases are not offered here")
        if isinstance(target, Path) and not target.is_file():
            raise missing_file(target)
    return url
