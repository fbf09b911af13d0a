"""One settings object, filled from the environment (CLI, notebooks) or ``st.secrets`` (the app)."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_SAMPLE_PATH", "Secret", "Settings"]

#: Where the demo warehouse lives, relative to the working directory (the repository root).
DEFAULT_SAMPLE_PATH = Path("sample_data") / "sample.duckdb"


class Secret:
    """A credential (write key, token) that never shows itself in ``repr``, ``str`` or logs.

    Only :meth:`reveal` returns the value, at the one place that builds a request header.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("a secret (write key or token) must be a non-empty string")
        self._value = value.strip()

    @classmethod
    def of(cls, value: Any) -> Secret:
        """Accept a `Secret`, a plain string, or an object with ``get_secret_value()``."""
        if isinstance(value, Secret):
            return value
        if hasattr(value, "get_secret_value"):  # pydantic.SecretStr and similar
            return cls(value.get_secret_value())
        return cls(value)

    def reveal(self) -> str:
        """The real value: call this only where it is handed to the wire."""
        return self._value

    def masked(self) -> str:
        """A hint to recognise which key is configured: the last 4 characters of a long key."""
        tail = self._value[-4:] if len(self._value) >= 12 else ""
        return f"••••{tail}"

    def redact(self, text: str) -> str:
        """``text`` with this secret (and its HTTP Basic form) replaced by ``***``."""
        basic = base64.b64encode(f"{self._value}:".encode()).decode()
        return text.replace(self._value, "***").replace(basic, "***")

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # never pickle a credential into a cache or a file
        raise TypeError("Secret values are not picklable")


def _secret(value: object) -> Secret | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return Secret(str(value))


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
    # May a page offer a free-text warehouse URL? None: only when the app is local and
    # single-user (no login configured); the operator sets it for a team.
    allow_user_warehouse_urls: bool | None = None
    # DuckDB URL options (?allow_unsigned_extensions=true, temp_directory=...) change what the
    # engine may do: refused unless the operator allows them.
    allow_warehouse_url_options: bool = False

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
        if not _MEMORY.match(str(self.query_memory_limit).strip()):
            raise ValueError(
                f"query_memory_limit must be a size such as '2GB' or '512MB', "
                f"got {self.query_memory_limit!r}"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], /) -> Settings:
        """Build from a mapping keyed by field name or by environment-variable name.

        ``st.secrets`` is such a mapping; a ``[sqltraits]`` or ``[segment]`` section is read too.
        """
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
        return cls._coerce(picked)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, /) -> Settings:
        env = os.environ if environ is None else environ
        picked = {name: env[var] for name, var in _ENV.items() if env.get(var, "").strip()}
        return cls._coerce(picked)

    @classmethod
    def _coerce(cls, picked: dict[str, Any]) -> Settings:
        out: dict[str, Any] = {}
        for name, value in picked.items():
            if name in ("segment_write_key", "profile_api_token"):
                out[name] = _secret(value)
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

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed (the UI edits settings this way)."""
        return replace(self, **changes)


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f"{_ENV[name]} must be true or false, got {value!r}")
