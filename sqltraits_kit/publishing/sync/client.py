"""A Segment client configured from the kit's settings (CLI: environment; app: st.secrets)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.publishing.segment.client import (
    DEFAULT_MAX_EVENTS_PER_SECOND,
    DEFAULT_MAX_REQUESTS_PER_SECOND,
    SegmentClient,
)
from sqltraits_kit.publishing.segment.retry import RetryPolicy
from sqltraits_kit.publishing.segment.secret import Secret as SegmentSecret

if TYPE_CHECKING:
    from sqltraits_kit.settings import Settings

__all__ = ["destination_of", "make_client", "rate"]


def _segment_secret(value: Any) -> SegmentSecret:
    """Either kit's ``Secret`` (``settings.Secret`` or ``segment.Secret``) or a plain string."""
    if isinstance(value, SegmentSecret):
        return value
    reveal = getattr(value, "reveal", None)
    if callable(reveal):
        return SegmentSecret(reveal())
    return SegmentSecret.of(value)


def rate(value: float | None) -> float | None:
    if value is None:
        return None
    if value < 0:
        raise ConfigError(f"a rate limit must be >= 0 (0 = no client-side limit), got {value}")
    return float(value) or None


def make_client(
    settings: Settings | None = None,
    /,
    *,
    write_key: Any = None,
    region: str | None = None,
    endpoint: str | None = None,
    max_requests_per_second: float | None = None,
    max_events_per_second: float | None = None,
    concurrency: int = 4,
    **options: Any,
) -> SegmentClient:
    """A :class:`SegmentClient` from settings, each argument overriding its setting.

    Rates of 0 mean no client-side limit. ``max_request_seconds`` (the total time of one
    request) and ``max_rate_limit_wait`` (``Retry-After`` obeyed per run) come from settings
    unless ``timeout=``/``retry=`` are given. A missing write key is a :class:`ConfigError` that
    says where to put it; the key itself is never shown.
    """
    key = write_key if write_key is not None else getattr(settings, "segment_write_key", None)
    if key is None or (isinstance(key, str) and not key.strip()):
        raise ConfigError(
            "no Segment write key: set SEGMENT_WRITE_KEY in the environment (the app also "
            "reads write_key under [segment] in .streamlit/secrets.toml); to try a publish "
            "without a Segment account, `sqltraits standin` runs a local test server"
        )
    region = region or getattr(settings, "segment_region", None) or "us"
    endpoint = endpoint or getattr(settings, "segment_endpoint", None)
    rps = max_requests_per_second
    eps = max_events_per_second
    if rps is None:
        rps = getattr(settings, "max_requests_per_second", DEFAULT_MAX_REQUESTS_PER_SECOND)
    if eps is None:
        eps = getattr(settings, "max_events_per_second", DEFAULT_MAX_EVENTS_PER_SECOND)
    options.setdefault("timeout", getattr(settings, "max_request_seconds", 15.0))
    cap = getattr(settings, "max_rate_limit_wait", None)
    if "retry" not in options and cap is not None:
        options["retry"] = RetryPolicy(max_rate_limit_wait=float(cap))
    try:
        return SegmentClient(
            _segment_secret(key),
            region=region,  # type: ignore[arg-type]
            endpoint=endpoint,
            max_requests_per_second=rate(rps),
            max_events_per_second=rate(eps),
            concurrency=concurrency,
            **options,
        )
    except ValueError as exc:
        raise ConfigError(f"Segment settings: {exc}") from None


def destination_of(destination: Any, /) -> str | None:
    """The sync state's destination key (endpoint and write-key fingerprint) of a configured
    :class:`~sqltraits_kit.settings.Destination`; None without a write key. No network."""
    from sqltraits_kit.publishing.sync.destination import client_destination

    if getattr(destination, "write_key", None) is None:
        return None
    client = make_client(
        write_key=destination.write_key, region=destination.region, endpoint=destination.endpoint
    )
    try:
        return client_destination(client)
    finally:
        client.close()
