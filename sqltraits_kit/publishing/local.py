"""The local test server as a destination: a publish you can see, with nothing leaving the machine.

The strict Segment stand-in (:mod:`sqltraits_kit.publishing.standin`: the Tracking API's limits,
dedup by ``messageId``) runs once per process, on 127.0.0.1 and a free port, with a random write
key that exists only in this process. The app offers it as the destination ``local`` when no
write key is configured (a demo, a first hour: the journey ends with a publish you can see);
the CLI runs it with ``sqltraits standin``. It keeps what it received in memory:
:func:`local_holdings` is "the traits Segment would now hold".
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from sqltraits_kit.publishing.standin import FakeSegmentServer
from sqltraits_kit.settings import Destination, Secret, Settings

__all__ = [
    "LOCAL",
    "LOCAL_LABEL",
    "local_destination",
    "local_holdings",
    "publish_destinations",
]

LOCAL = "local"
LOCAL_LABEL = "Local test server (nothing leaves this machine)"
_lock = threading.Lock()
_server: dict[str, Any] = {}


def _running() -> FakeSegmentServer | None:
    return _server.get("server")


def local_destination() -> Destination:
    """The local test server as a :class:`Destination`, started on first use (127.0.0.1)."""
    with _lock:
        server = _running()
        if server is None:
            key = "local_" + secrets.token_urlsafe(24)
            server = FakeSegmentServer(
                host="127.0.0.1", port=0, write_keys=(key,), keep_messages=False
            ).start()
            _server.update(server=server, key=key)
        return Destination(
            name=LOCAL, endpoint=server.url, write_key=Secret(_server["key"]), label=LOCAL_LABEL
        )


def publish_destinations(settings: Settings, /, *, local: bool = True) -> tuple[Destination, ...]:
    """The destinations a publish may choose.

    When no configured destination has a write key (a demo, or a first hour without a Segment
    account), the local test server comes first, then the configured ones (whose checks and dry
    runs work without a key). Once the operator configures a key, only the configured
    destinations are offered: a team's deployment shows exactly what its operator set up (the
    operator can still run ``sqltraits standin`` and configure it as a destination). The local
    server starts only when it is chosen (:func:`resolve`).
    """
    configured = settings.publish_destinations()
    if not local or any(d.write_key is not None for d in configured):
        return configured
    return (Destination(name=LOCAL, label=LOCAL_LABEL), *configured)


def resolve(destination: Destination) -> Destination:
    """``destination`` ready to send: the local one gets its running server's URL and key."""
    return local_destination() if destination.name == LOCAL else destination


def local_holdings(*, collection: str = "users") -> list[dict[str, Any]]:
    """What the local test server holds: one row per profile, ``{"identifier": ..., **traits}``.

    Empty when it was never started in this process.
    """
    server = _running()
    if server is None:
        return []
    rows = []
    for key, traits in sorted(server.collection(collection).items()):
        rows.append({"identifier": key.split(":", 1)[1], **traits})
    return rows
