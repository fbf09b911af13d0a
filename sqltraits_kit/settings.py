"""One settings object, filled from the environment (CLI, notebooks) or ``st.secrets`` (the app)."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_SAMPLE_PATH", "Destination", "Secret", "Settings"]

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
            if name in _CONSOLE_FIELDS:  # parsed by the console block below
                out[name] = value
            elif name in ("segment_write_key", "profile_api_token"):
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
    picked.update(_console_from_mapping(values, flat))
    return picked


def _pick_env(env: Mapping[str, str]) -> dict[str, Any]:
    picked: dict[str, Any] = {
        name: env[var] for name, var in _ENV.items() if env.get(var, "").strip()
    }
    picked.update(_console_from_env(env))
    return picked


# ---------------------------------------------------------------- console (issue 12)
# Where a publish may go, who may publish, and the model-signing key: operator settings, read
# from secrets.toml or the environment, never from what a page's user types.

_DESTINATION_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_CONSOLE_FIELDS = (
    "destinations",
    "auth_configured",
    "auth_providers",
    "publishers",
    "publisher_claim",
    "model_signing_key",
)


@dataclass(frozen=True, kw_only=True)
class Destination:
    """One Segment workspace (or Segment-compatible collector) the operator configured.

    ``production`` is the default; another destination keeps its own sync state (its sync keys
    end in ``@<name>``), so a publish to a test server never counts as delivered to production.
    """

    name: str
    region: str = "us"
    endpoint: str | None = None  # overrides the region (a proxy or a local test server)
    write_key: Secret | None = field(default=None, repr=False)
    label: str = ""  # what the Publish page shows; default: name and region or host

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _DESTINATION_NAME.match(self.name):
            raise ValueError(
                f"destination name {self.name!r} must be 1-32 lower-case letters, digits, '_' or "
                "'-'"
            )
        if self.region not in ("us", "eu"):
            raise ValueError(
                f"destination {self.name!r}: region must be 'us' or 'eu', got {self.region!r}"
            )
        if self.endpoint is not None and not re.match(r"^https?://[^\s/?#]+", self.endpoint):
            raise ValueError(
                f"destination {self.name!r}: endpoint must be an http(s):// URL, got "
                f"{self.endpoint!r}"
            )
        if not self.label:
            where = self.region.upper()
            if self.endpoint:
                where = self.endpoint.split("://", 1)[1].split("/", 1)[0]
            object.__setattr__(self, "label", f"{self.name} ({where})")

    def sync_key(self, base: str) -> str:
        """The sync key of ``base`` (a source's own key) for publishes to this destination."""
        return base if self.name == "production" else f"{base}@{self.name}"

    @classmethod
    def parse(cls, name: str, values: Mapping[str, Any], /) -> Destination:
        known = {"region", "endpoint", "write_key", "label"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"destination {name!r}: unknown setting(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(known))})"
            )
        endpoint = str(values.get("endpoint") or "").strip() or None
        return cls(
            name=str(name).strip().lower(),
            region=str(values.get("region") or "us").strip().lower(),
            endpoint=endpoint,
            write_key=_secret(values.get("write_key")),
            label=str(values.get("label") or ""),
        )


def _emails(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value or ())
    out = tuple(str(v).strip().lower() for v in items if str(v).strip())
    bad = [e for e in out if "@" not in e]
    if bad:
        raise ValueError(f"publishers must be e-mail addresses, got {', '.join(bad)}")
    return out


def _claim(value: Any) -> str | None:
    text = str(value or "").strip()
    if not text:
        return None
    claim, sep, wanted = text.partition("=")
    if not sep or not claim.strip() or not wanted.strip():
        raise ValueError(f"publisher_claim must be CLAIM=VALUE (e.g. groups=publishers): {text!r}")
    return f"{claim.strip()}={wanted.strip()}"


def _console_from_mapping(values: Mapping[str, Any], flat: Mapping[str, Any]) -> dict[str, Any]:
    """The console's settings from ``st.secrets``: ``[auth]`` (Streamlit's own OIDC section),
    ``publishers``/``publisher_claim``/``model_signing_key`` in ``[sqltraits]``, and
    ``[segment.destinations.<name>]`` tables."""
    out: dict[str, Any] = {}
    auth = values.get("auth")
    if isinstance(auth, Mapping):
        out["auth_configured"] = True
        out["auth_providers"] = tuple(k for k, v in auth.items() if isinstance(v, Mapping))
    for key in ("publishers", "sqltraits_publishers"):
        if flat.get(key):
            out["publishers"] = _emails(flat[key])
            break
    for key in ("publisher_claim", "sqltraits_publisher_claim"):
        if flat.get(key):
            out["publisher_claim"] = _claim(flat[key])
            break
    for key in ("model_signing_key", "sqltraits_model_signing_key"):
        if flat.get(key):
            out["model_signing_key"] = _secret(flat[key])
            break
    table = flat.get("destinations")
    if isinstance(table, Mapping) and table:
        out["destinations"] = tuple(
            Destination.parse(name, sub if isinstance(sub, Mapping) else {})
            for name, sub in table.items()
        )
    return out


def _console_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The same from the environment: ``SQLTRAITS_PUBLISHERS`` (comma-separated),
    ``SQLTRAITS_PUBLISHER_CLAIM``, ``SQLTRAITS_MODEL_SIGNING_KEY`` and
    ``SQLTRAITS_DESTINATIONS=test,staging`` with ``SEGMENT_DESTINATION_TEST_WRITE_KEY``,
    ``..._REGION``, ``..._ENDPOINT``, ``..._LABEL`` per name. Login (``[auth]``) is only in
    secrets.toml: Streamlit reads it there."""
    out: dict[str, Any] = {}
    if env.get("SQLTRAITS_PUBLISHERS", "").strip():
        out["publishers"] = _emails(env["SQLTRAITS_PUBLISHERS"])
    if env.get("SQLTRAITS_PUBLISHER_CLAIM", "").strip():
        out["publisher_claim"] = _claim(env["SQLTRAITS_PUBLISHER_CLAIM"])
    if env.get("SQLTRAITS_MODEL_SIGNING_KEY", "").strip():
        out["model_signing_key"] = _secret(env["SQLTRAITS_MODEL_SIGNING_KEY"])
    names = [n.strip() for n in env.get("SQLTRAITS_DESTINATIONS", "").split(",") if n.strip()]
    if names:
        found = []
        for name in names:
            prefix = f"SEGMENT_DESTINATION_{name.upper().replace('-', '_')}_"
            sub = {
                key: env[prefix + key.upper()]
                for key in ("region", "endpoint", "write_key", "label")
                if env.get(prefix + key.upper(), "").strip()
            }
            found.append(Destination.parse(name, sub))
        out["destinations"] = tuple(found)
    return out
