"""The faults the stand-in can inject: wrong answers, dropped connections, slow answers."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Respond:
    """Answer with this status. ``process=True`` stores the messages first (lost ack)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    process: bool = False


@dataclass(frozen=True)
class DropConnection:
    """Close the socket without answering; ``process=True`` stores the messages first."""

    process: bool = False


@dataclass(frozen=True)
class Delay:
    """Sleep, then handle the request normally (a slow answer; a client may time out).

    ``until``: wait for this event instead (at most ``seconds``), so a test holds a run in
    flight for exactly as long as it needs, whatever the machine's load.
    """

    seconds: float
    until: threading.Event | None = field(default=None, compare=False)

    def wait(self) -> None:
        if self.until is not None:
            self.until.wait(self.seconds)
        else:
            time.sleep(self.seconds)


#: Where `Redirect` sends the client by default: answers 200 (JSON ``{"success": true}``,
#: the most convincing answer there is) to GET and POST, and stores nothing.
LANDING_PATH = "/landing"

_PORTAL_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Sign in to the guest network</title></head>"
    "<body><form method=post action=/login><input name=user></form></body></html>\n"
)


@dataclass(frozen=True)
class HtmlPage:
    """Answer ``status`` with an HTML page (``text/html``), as a proxy or portal does."""

    status: int = 200
    body: str = _PORTAL_PAGE
    process: bool = False


@dataclass(frozen=True)
class Redirect:
    """Answer a 3xx with ``Location`` (default: `LANDING_PATH` on this server, absolute)."""

    status: int = 302
    location: str | None = None
    process: bool = False


@dataclass(frozen=True)
class Trickle:
    """Send the answer one byte every ``interval`` seconds.

    ``head=False``: status line and headers at once, then the body byte by byte (the body
    is Segment's success JSON padded with spaces to ``size`` bytes: valid, just slow);
    ``head=True``: the headers trickle too. ``process=True`` stores the messages first.
    """

    interval: float = 0.05
    size: int = 200
    head: bool = False
    process: bool = False


Fault = Respond | DropConnection | Delay | HtmlPage | Redirect | Trickle
_FAULT_KINDS: dict[str, Any] = {
    "respond": Respond,
    "drop": DropConnection,
    "delay": Delay,
    "html": HtmlPage,
    "redirect": Redirect,
    "trickle": Trickle,
}


def fault_from_json(spec: dict[str, Any]) -> Fault:
    """``{"kind": "respond"|"drop"|"delay"|"html"|"redirect"|"trickle", **fields}``."""
    spec = dict(spec)
    return _FAULT_KINDS[spec.pop("kind")](**spec)
