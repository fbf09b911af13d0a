"""One settings object, filled from the environment (CLI, notebooks) or ``st.secrets`` (the app)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqltraits_kit.settings.console import (
    CONSOLE_FIELDS,
    Destination,
    console_from_env,
    console_from_mapping,
)
from sqltraits_kit.settings.secret import Secret, as_secret

__all__ = ["DEFAULT_SAMPLE_PATH", "Destination", "Secret", "Settings"]

#: Where the demo warehouse lives, relative to the working directory (the repository root).
DEFAULT_SAMPLE_PATH = Path("sample_data") / "sample.duckdb"


_ENV = {
    "db_url": "SQLTRAITS_DB_URL",
    "models_dir": "SQLTRAITS_MODELS_DIR",
    "segment_write_key": "SEGMENT_WRITE_KEY",
    "segment_region": "SEGMENT_REGION",
    "segment_endpoint": "SEGMENT_ENDPOINT",
    "profile_api_token": "SEGMENT_PROFILE_API_TOKEN",
    "profile_space_id": "SEGMENT_SPACE_ID",
    "profile_endpoint": "SEGMENT_PROFILE_ENDPOINT",
    "max_requests_per_second": "SQLTRAITS_MAX_REQUESTS_PER_SECOND",
    "max_events_per_second": "SQLTRAITS_MAX_EVENTS_PER_SECOND",
    "max_request_seconds": "SQLTRAITS_MAX_REQUEST_SECONDS",
    "max_rate_limit_wait": "SQLTRAITS_MAX_RATE_LIMIT_WAIT",
    "sample_customers": "SQLTRAITS_SAMPLE_CUSTOMERS",
    # -- sandbox and limits (issue 12): what user SQL and user-typed URLs may do
    "query_timeout_s": "SQLTRAITS_QUERY_TIMEOUT_S",
    "query_memory_limit": "SQLTRAITS_QUERY_MEMORY_LIMIT",
    "sync_memory_limit": "SQLTRAITS_SYNC_MEMORY_LIMIT",
    "allow_user_warehouse_urls": "SQLTRAITS_ALLOW_USER_WAREHOUSE_URLS",
    "allow_warehouse_url_options": "SQLTRAITS_ALLOW_WAREHOUSE_URL_OPTIONS",
}

_BOOLS = ("allow_user_warehouse_urls", "allow_warehouse_url_options")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
# DuckDB's memory_limit syntax, which the kit also uses to describe the budget.
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the kit needs to know about where it runs. Credentials are :class:`Secret`."""

    db_url: str | None = None  # None: the demo sample (built on first use)
    models_dir: Path = Path("models")
    segment_write_key: Secret | None = field(default=None, repr=False)
    segment_region: str = "us"
    segment_endpoint: str | None = None
    profile_api_token: Secret | None = field(default=None, repr=False)
    profile_space_id: str | None = None
    profile_endpoint: str | None = None
    max_requests_per_second: float = 20.0
    max_events_per_second: float = 1000.0
    max_request_seconds: float = 15.0  # one Segment request, connect to last byte
    max_rate_limit_wait: float = 120.0  # Retry-After obeyed per run, in total
    sample_customers: int = 50_000  # size of the demo sample built on first start
    # -- sandbox and limits (issue 12). A budget for every statement that runs user SQL
    # (validation, preview, dry run, publish): time in seconds (0 = none), memory in DuckDB's
    # syntax ("2GB"; DuckDB only: PostgreSQL's memory is the server's work_mem).
    query_timeout_s: float = 120.0
    query_memory_limit: str = "2GB"
    # The cap on the connection `sqltraits sync` publishes with: a publish is paced by Segment,
    # so its checks and diff may spill to disk rather than grow with the table. 96MB: peak RSS
    # of a 5M-row publish 1.17x that of 500k rows, in the same time as 512MB (1.43x at 160MB);
    # benchmarks/RESULTS.md, "Memory vs size".
    sync_memory_limit: str = "96MB"
    # May a page offer a free-text warehouse URL? None: only when the app is local and
    # single-user (no login configured); the operator sets it for a team.
    allow_user_warehouse_urls: bool | None = None
    # DuckDB URL options (?allow_unsigned_extensions=true, temp_directory=...) change what the
    # engine may do: refused unless the operator allows them.
    allow_warehouse_url_options: bool = False
    # -- console: destinations, access, model signing (see the block at the end of this file)
    destinations: tuple[Destination, ...] = ()  # named Segment destinations besides the above
    auth_configured: bool = False  # an [auth] section in secrets.toml: st.login is on
    auth_providers: tuple[str, ...] = ()  # its [auth.<provider>] tables; () = the [auth] one
    publishers: tuple[str, ...] = ()  # e-mail addresses that may publish and override gates
    publisher_claim: str | None = None  # "claim=value" on the identity token: a publisher
    model_signing_key: Secret | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.segment_region not in ("us", "eu"):
            raise ValueError(f"segment_region must be 'us' or 'eu', got {self.segment_region!r}")
        for name in ("max_requests_per_second", "max_events_per_second"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 = no client-side limit)")
        if not self.max_request_seconds > 0 or not self.max_rate_limit_wait >= 0:
            raise ValueError("max_request_seconds must be > 0 and max_rate_limit_wait >= 0")
        if not self.query_timeout_s >= 0:
            raise ValueError("query_timeout_s must be >= 0 seconds (0 = no time limit)")
        for name in ("query_memory_limit", "sync_memory_limit"):
            if not _MEMORY.match(str(getattr(self, name)).strip()):
                raise ValueError(
                    f"{name} must be a size such as '2GB' or '512MB', got {getattr(self, name)!r}"
                )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], /) -> Settings:
        """Build from a mapping keyed by field name or by environment-variable name.

        ``st.secrets`` is such a mapping; a ``[sqltraits]`` or ``[segment]`` section is read too.
        """
        return cls._coerce(_pick_mapping(values))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, /) -> Settings:
        return cls._coerce(_pick_env(os.environ if environ is None else environ))

    @classmethod
    def from_sources(
        cls, secrets: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """The app's settings: the environment, each field overridden by ``secrets`` when set
        there (so an ``[auth]`` section in secrets.toml is never lost to an environment URL)."""
        env = _pick_env(os.environ if environ is None else environ)
        return cls._coerce({**env, **_pick_mapping(secrets or {})})

    @classmethod
    def _coerce(cls, picked: dict[str, Any]) -> Settings:
        out: dict[str, Any] = {}
        for name, value in picked.items():
            if name in CONSOLE_FIELDS:  # parsed by the console block below
                out[name] = value
            elif name in ("segment_write_key", "profile_api_token"):
                out[name] = as_secret(value)
            elif name == "models_dir":
                out[name] = Path(str(value))
            elif name in _BOOLS:
                out[name] = _bool(name, value)
            elif name.startswith("max_") or name in ("sample_customers", "query_timeout_s"):
                try:
                    out[name] = int(value) if name == "sample_customers" else float(value)
                except (TypeError, ValueError):
                    raise ValueError(f"{_ENV[name]} must be a number, got {value!r}") from None
            elif name == "segment_region":
                out[name] = str(value).strip().lower()
            else:
                out[name] = str(value)
        return cls(**out)

    def user_warehouse_urls_allowed(self, *, local: bool) -> bool:
        """Whether a page may take a typed warehouse URL: the operator's choice, else ``local``."""
        if self.allow_user_warehouse_urls is None:
            return local
        return self.allow_user_warehouse_urls

    def for_publishing(self) -> Settings:
        """These settings for the connection a publish runs on: DuckDB capped at
        ``sync_memory_limit`` (it spills to the database's temporary folder beyond it)."""
        return replace(self, query_memory_limit=self.sync_memory_limit)

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed (the UI edits settings this way)."""
        return replace(self, **changes)

    def publish_destinations(self) -> tuple[Destination, ...]:
        """Every Segment destination the operator configured, the default one first.

        The single-key settings (``SEGMENT_WRITE_KEY``, region, endpoint) are the destination
        ``production``; named ``destinations`` come after it (one named ``production``
        replaces it). Without any configuration, ``production`` without a key: dry runs work.
        """
        named = {d.name: d for d in self.destinations}
        default = named.pop("production", None) or Destination(
            name="production",
            region=self.segment_region,
            endpoint=self.segment_endpoint,
            write_key=self.segment_write_key,
        )
        if not (default.write_key or default.endpoint) and named:
            return tuple(named.values())  # nothing configured for production: not offered
        return (default, *named.values())


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f"{_ENV[name]} must be true or false, got {value!r}")


def _pick_mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for section in ("sqltraits", "segment"):
        sub = values.get(section) if hasattr(values, "get") else None
        if isinstance(sub, Mapping):
            for key, value in sub.items():
                flat.setdefault(key.lower(), value)
    for key, value in values.items():
        if not isinstance(value, Mapping):
            flat[key.lower()] = value
    picked: dict[str, Any] = {}
    for name, env in _ENV.items():
        for key in (name, env.lower(), name.removeprefix("segment_")):
            if key in flat and flat[key] not in (None, ""):
                picked[name] = flat[key]
                break
    picked.update(console_from_mapping(values, flat))
    return picked


def _pick_env(env: Mapping[str, str]) -> dict[str, Any]:
    picked: dict[str, Any] = {
        name: env[var] for name, var in _ENV.items() if env.get(var, "").strip()
    }
    picked.update(console_from_env(env))
    return picked
