"""Where Segment's APIs live, per data region."""

from __future__ import annotations

from urllib.parse import urlsplit

TRACKING_HOSTS = {
    "us": "https://api.segment.io",
    # The US host accepts an EU workspace's data without error and loses it.
    "eu": "https://events.eu1.segmentapis.com",
}
PROFILE_HOSTS = {"us": "https://profiles.segment.com", "eu": "https://profiles.euw1.segment.com"}


def base_url(hosts: dict[str, str], *, region: str, endpoint: str | None) -> str:
    """``endpoint`` (an http(s) base URL, e.g. a test server) or the region's host."""
    if endpoint is None:
        if region not in hosts:
            raise ValueError(f"region must be one of {sorted(hosts)}, not {region!r}")
        return hosts[region]
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # Not quoted back: a mistyped endpoint may hold a credential.
        raise ValueError("endpoint must be an http:// or https:// base URL")
    return endpoint.rstrip("/")
