"""Where a publish goes: the endpoint and a fingerprint of the write key, never the key itself.

The sync state, the run history, the failed rows and the lease are all keyed by sync key *and*
destination, so a second workspace, another region or a test server first starts from an empty
state instead of inheriting what another destination acknowledged (the same table published to
a new write key then sends every profile, not "0 sent, N unchanged").

A destination key reads ``<endpoint>#<fingerprint>``: the fingerprint is an HMAC-SHA256 of the
write key under a fixed, kit-specific key (12 bytes of it, in hex). It tells two keys apart and
cannot be turned back into the key (write keys are 32 random characters: no dictionary to try);
the fixed HMAC key only separates this use of the key from any other hash of it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

__all__ = ["client_destination", "destination_key", "display", "message_scope"]

_FINGERPRINT_KEY = b"sqltraits-kit destination v1"


def destination_key(endpoint: str, write_key: str | None) -> str:
    """``<endpoint>#<fingerprint>``: where a run sends, without the key in it."""
    if not write_key:
        return f"{endpoint}#nokey"
    digest = hmac.new(_FINGERPRINT_KEY, write_key.encode(), hashlib.sha256).hexdigest()
    return f"{endpoint}#{digest[:24]}"


def client_destination(client: Any) -> str:
    """The destination key of a :class:`SegmentClient` (its URL and write-key fingerprint)."""
    secret = getattr(client, "_key", None)  # SegmentClient keeps its key wrapped in a Secret
    key = secret.reveal() if secret is not None and hasattr(secret, "reveal") else secret
    return destination_key(str(getattr(client, "url", "unknown")), key)


def display(destination: str | None) -> str:
    """A destination for people: the endpoint and the first 8 characters of the fingerprint."""
    if not destination:
        return "(before destinations were recorded)"
    endpoint, _, fingerprint = destination.partition("#")
    return f"{endpoint} (key {fingerprint[:8]})" if fingerprint else endpoint


def message_scope(sync_key: str, destination: str | None) -> str:
    """The namespace of the message ids a sync key derives for one destination.

    Deterministic across runs: the ledger re-sends a row whose fate is unknown under the id it
    was first sent with (see :mod:`.state`), whichever run does it.
    """
    text = f"{sync_key}\x00{destination or ''}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]
