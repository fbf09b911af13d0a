"""A total deadline per HTTP request: connect, send, headers and the whole body.

``requests``' ``timeout`` bounds each socket operation, not the request: a server that
trickles its answer a byte at a time (headers or body) keeps a request alive for as long
as it likes. Here one watchdog thread per process holds the deadline of every request
in flight and, when one passes, shuts its socket down; the blocked read then fails at
once and the request raises like a dropped connection. `DeadlineAdapter` is the
``requests`` transport that tells the watchdog which connection a request is using.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

#: How often to look again at a request whose connection has no socket yet (connecting).
_RECHECK = 0.05

_current = threading.local()  # the request in flight on this thread, if any


class Inflight:
    """One request under a deadline; ``expired`` tells the caller why it failed."""

    __slots__ = ("conn", "deadline", "expired", "sock")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.conn: Any = None
        # Kept apart from conn.sock: http.client drops conn.sock as soon as the headers of
        # a "Connection: close" answer are read, while the body is still being received.
        self.sock: socket.socket | None = None
        self.expired = False

    def cut(self) -> bool:
        """Shut the socket down; False if there is no socket yet (still connecting)."""
        sock = self.sock or getattr(self.conn, "sock", None)
        if sock is None:
            return False
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        return True


class _Watchdog:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._live: set[Inflight] = set()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watch(self, seconds: float) -> Iterator[Inflight]:
        inflight = Inflight(time.monotonic() + seconds)
        _current.request = inflight
        with self._cond:
            self._live.add(inflight)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="segment-deadline", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        try:
            yield inflight
        finally:
            _current.request = None
            with self._cond:
                self._live.discard(inflight)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for inflight in [r for r in self._live if r.deadline <= now]:
                    inflight.expired = True
                    if inflight.cut():
                        self._live.discard(inflight)
                    else:
                        inflight.deadline = now + _RECHECK
                nearest = min((r.deadline for r in self._live), default=None)
                self._cond.wait(None if nearest is None else max(nearest - now, 0.001))


_watchdog = _Watchdog()


def deadline(seconds: float) -> contextlib.AbstractContextManager[Inflight]:
    """Bound the requests made on this thread (through a `DeadlineAdapter`) to ``seconds``."""
    return _watchdog.watch(seconds)


class _RegisteringPool:
    """Pool mixin: hand the connection a request gets (and its socket) to the watchdog."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        inflight = getattr(_current, "request", None)
        if inflight is not None:
            inflight.conn = conn
            inflight.sock = conn.sock  # a kept-alive connection; None for a new one
        return conn


class _RegisteringConnection:
    """Connection mixin: hand a new socket (after TLS, if any) to the watchdog."""

    sock: Any

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        inflight = getattr(_current, "request", None)
        if inflight is not None:
            inflight.sock = self.sock


class _Connection(_RegisteringConnection, HTTPConnection):
    pass


class _TLSConnection(_RegisteringConnection, HTTPSConnection):
    pass


class _DeadlinePool(_RegisteringPool, HTTPConnectionPool):
    ConnectionCls = _Connection


class _DeadlineTLSPool(_RegisteringPool, HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


_POOLS = {"http": _DeadlinePool, "https": _DeadlineTLSPool}


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections the `deadline` watchdog can cut.

    Only urllib3's stock pools are replaced: a SOCKS proxy's pools are left as they are
    (its requests then have ``requests``' per-read timeout only).
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _use_deadline_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        _use_deadline_pools(manager)
        return manager


def _use_deadline_pools(manager: Any) -> None:
    pools = manager.pool_classes_by_scheme
    if pools.get("http") is HTTPConnectionPool and pools.get("https") is HTTPSConnectionPool:
        manager.pool_classes_by_scheme = dict(_POOLS)


def mount(session: Any) -> Any:
    """Give ``session`` deadline-aware transports for http and https; returns it."""
    session.mount("http://", DeadlineAdapter())
    session.mount("https://", DeadlineAdapter())
    return session
