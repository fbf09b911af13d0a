"""The console's operator settings: where a publish may go (`Destination`), who may publish, and
the model-signing key, read from secrets.toml or the environment, never from what a page's user
types."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqltraits_kit.settings.secret import Secret, as_secret

__all__ = ["CONSOLE_FIELDS", "Destination", "console_from_env", "console_from_mapping"]

_DESTINATION_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
CONSOLE_FIELDS = (
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
            write_key=as_secret(values.get("write_key")),
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


def console_from_mapping(values: Mapping[str, Any], flat: Mapping[str, Any]) -> dict[str, Any]:
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
            out["model_signing_key"] = as_secret(flat[key])
            break
    table = flat.get("destinations")
    if isinstance(table, Mapping) and table:
        out["destinations"] = tuple(
            Destination.parse(name, sub if isinstance(sub, Mapping) else {})
            for name, sub in table.items()
        )
    return out


def console_from_env(env: Mapping[str, str]) -> dict[str, Any]:
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
        out["model_signing_key"] = as_secret(env["SQLTRAITS_MODEL_SIGNING_KEY"])
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
