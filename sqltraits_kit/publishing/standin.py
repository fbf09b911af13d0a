"""A local stand-in for Segment's Tracking API and Profile API, on 127.0.0.1 (nothing leaves
the machine): for demos (``sqltraits standin``), for trying a publish without a Segment account,
and for the test suite, which drives its fault injection.

Behaviour follows Segment's docs (``http-api/index.md``, ``unify/product-limits.md``,
``unify/profile-api.md``):

- ``POST /v1/batch`` (and ``/v1/identify``, ``/v1/group``, ...): HTTP Basic auth with
  the write key as user name (or ``writeKey`` in the body), else 401;
  ``Content-Type: application/json``, else 400; gzip bodies accepted; invalid JSON
  (bare ``NaN`` included) -> 400; body over 500,000 bytes (32 KB for a single call) or
  any message over 32 KB -> 400; more than 2,500 messages -> 200 and every event dropped.
- Messages without userId/anonymousId, a group without groupId (or > 500 chars), a
  messageId over 100 chars or 300+ traits are answered 200 and dropped, as Unify does;
  they are listed in `FakeSegmentServer.rejected` so tests can assert there are none.
- Dedup by messageId; identify merges traits into the user's profile, group into the
  account's; a null value sets the trait to null.
- ``GET /v1/spaces/<space>/collections/<users|accounts>/profiles/<type>:<id>/traits``
  with Basic auth (access token), ``limit``/``include``/``next``; 404 body as Segment's.
- Fault injection: `FakeSegmentServer.inject` queues `Respond`, `DropConnection`,
  `Delay`, `HtmlPage` (a proxy or captive portal answering 200 with HTML), `Redirect`
  (a 3xx to `LANDING_PATH` on this server, which answers 200 to GET and POST and records
  the headers it got in `FakeSegmentServer.landing`) or `Trickle` (an answer sent a byte
  at a time) for the next tracking requests; `FakeSegmentServer.fail_every` adds a rule
  (e.g. a ``Respond(429, headers={"Retry-After": "20"})`` on every request).
- Admin endpoints for a server run in another process: ``GET /_fake/stats``,
  ``GET /_fake/profiles/<users|accounts>``, ``GET /_fake/rejected``,
  ``GET /_fake/landing`` (headers the redirect target received), ``POST /_fake/reset``,
  ``POST /_fake/inject`` (JSON list of faults, see `fault_from_json`),
  ``POST /_fake/fail_every`` (``{"n": 3, "fault": {...}}``), ``POST /_fake/clear_faults``.
  `FakeSegmentServer.inject_profile` does the same for Profile API GETs.

Run alone: ``python -m sqltraits_kit.publishing.standin --port 0`` prints
``FAKE_SEGMENT_URL=http://127.0.0.1:<port>`` and serves until interrupted; ``sqltraits standin``
does the same with a friendlier banner and shows what it holds (``--show``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import gzip
import json
import re
import signal
import socket
import ssl
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

MAX_BATCH_BODY_BYTES = 500_000
MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_MESSAGES = 2500
MAX_MESSAGE_ID_CHARS = 100
MAX_GROUP_ID_CHARS = 500
MAX_TRAITS = 299
TRACKING_TYPES = {"identify", "group", "track", "page", "screen", "alias"}
_TRAITS_PATH = re.compile(
    r"^/v1/spaces/(?P<space>[^/]+)/collections/(?P<collection>users|accounts)"
    r"/profiles/(?P<ident>[^/]+)/traits$"
)


# -- faults -------------------------------------------------------------------------------


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
    """Sleep, then handle the request normally (a slow answer; a client may time out)."""

    seconds: float


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


@dataclass
class Stats:
    requests: int = 0  # tracking POSTs received, faulted ones included
    faults: int = 0
    accepted_requests: int = 0  # answered 200 after processing
    messages_received: int = 0  # in processed requests: duplicates and rejected included
    messages_accepted: int = 0  # unique, valid, stored
    duplicates: int = 0
    messages_rejected: int = 0
    messages_dropped: int = 0  # in batches over 2,500 messages
    bytes_received: int = 0  # decompressed bodies of accepted requests
    gzip_requests: int = 0
    profile_requests: int = 0
    landing_requests: int = 0  # requests that reached the redirect target
    trickles_cut: int = 0  # trickled answers the client hung up on before the end


class _Error(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _segment_size(msg: Any) -> int:
    return len(json.dumps(msg).encode())


# -- server -------------------------------------------------------------------------------


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gives up mid-answer (timeouts, dropped-connection tests) is expected
        # here; anything else is still reported.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeSegmentServer:
    def __init__(
        self,
        *,
        write_keys: tuple[str, ...] = ("test-write-key",),
        profile_tokens: tuple[str, ...] = ("test-profile-token",),
        space_id: str = "spa_test",
        host: str = "127.0.0.1",
        port: int = 0,
        keep_messages: bool = True,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.write_keys = set(write_keys)
        self.profile_tokens = set(profile_tokens)
        self.space_id = space_id
        self.keep_messages = keep_messages
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._rules: list[tuple[int, Fault]] = []
        self.reset()
        self._httpd = _QuietServer((host, port), _Handler)
        self._scheme = "https" if tls is not None else "http"
        if tls is not None:  # serve HTTPS with this (server-side) context
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self._httpd.daemon_threads = True
        self._httpd.app = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    # lifecycle
    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{self._scheme}://{host}:{port}"

    def start(self) -> FakeSegmentServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeSegmentServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # state
    def reset(self) -> None:
        with self._lock:
            self.stats = Stats()
            self.messages: list[dict[str, Any]] = []
            self.rejected: list[tuple[Any, str]] = []  # (messageId, reason)
            self.seen_ids: set[str] = set()
            self.profiles: dict[tuple[str, str], dict[str, Any]] = {}  # (collection, "t:id")
            self.landing: list[dict[str, Any]] = []  # {method, path, headers} at the target
            self._faults.clear()
            self._rules.clear()
            self._profile_faults: deque[Fault] = deque()

    def inject_profile(self, *faults: Fault) -> None:
        """Apply these faults, in order, to the next Profile API requests."""
        with self._lock:
            self._profile_faults.extend(faults)

    def inject(self, *faults: Fault) -> None:
        """Apply these faults, in order, to the next tracking requests."""
        with self._lock:
            self._faults.extend(faults)

    def fail_every(self, n: int, fault: Fault) -> None:
        """Apply ``fault`` to every ``n``-th tracking request (counted from the start)."""
        with self._lock:
            self._rules.append((n, fault))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._rules.clear()
            self._profile_faults.clear()

    def user_traits(self, user_id: str) -> dict[str, Any] | None:
        return self.profiles.get(("users", f"user_id:{user_id}"))

    def group_traits(self, group_id: str) -> dict[str, Any] | None:
        return self.profiles.get(("accounts", f"group_id:{group_id}"))

    def collection(self, name: str = "users") -> dict[str, dict[str, Any]]:
        """``{"user_id:42": {...traits}}`` for one collection, copied."""
        with self._lock:
            return {key: dict(t) for (coll, key), t in self.profiles.items() if coll == name}

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dataclasses.asdict(self.stats)

    # request handling (called from handler threads)
    def _next_fault(self) -> Fault | None:
        with self._lock:
            self.stats.requests += 1
            fault = self._faults.popleft() if self._faults else None
            if fault is None:
                for n, rule in self._rules:
                    if self.stats.requests % n == 0:
                        fault = rule
                        break
            if fault is not None:
                self.stats.faults += 1
            return fault

    def _track(self, path: str, headers: Any, raw: bytes) -> dict[str, Any]:
        """Validate and store one tracking request; returns the JSON answer or raises."""
        ctype = headers.get("Content-Type", "")
        if ctype.split(";")[0].strip().lower() != "application/json":
            raise _Error(400, "invalid_content_type", "Content-Type must be application/json")
        if headers.get("Content-Encoding", "").lower() == "gzip":
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError) as exc:
                raise _Error(400, "invalid_gzip", str(exc)) from None
            with self._lock:
                self.stats.gzip_requests += 1
        single = path != "/v1/batch"
        limit = MAX_MESSAGE_BYTES if single else MAX_BATCH_BODY_BYTES
        if len(raw) > limit:
            raise _Error(400, "payload_too_large", f"body is {len(raw)} bytes; limit {limit}")
        try:
            body = json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Error(400, "invalid_json", f"invalid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _Error(400, "invalid_json", "body must be a JSON object")
        key = _basic_user(headers.get("Authorization")) or body.get("writeKey")
        if key not in self.write_keys:
            raise _Error(401, "invalid_write_key", "invalid write key")
        if single:
            kind = path.rsplit("/", 1)[-1]
            messages = [{**body, "type": body.get("type", kind)}]
        else:
            messages = body.get("batch")
            if not isinstance(messages, list):
                raise _Error(400, "invalid_batch", "'batch' must be an array")
        if len(messages) > MAX_BATCH_MESSAGES:
            with self._lock:  # Segment answers 200 and drops them all
                self.stats.messages_dropped += len(messages)
            return {"success": True}
        for msg in messages:
            if _segment_size(msg) > MAX_MESSAGE_BYTES:
                raise _Error(400, "message_too_large", "a message is over 32 KB")
        with self._lock:
            self.stats.accepted_requests += 1
            self.stats.bytes_received += len(raw)
            for msg in messages:
                self._accept(msg)
        return {"success": True}

    def _accept(self, msg: Any) -> None:
        self.stats.messages_received += 1
        reason = _invalid(msg)
        mid = msg.get("messageId") if isinstance(msg, dict) else None
        if reason:
            self.stats.messages_rejected += 1
            self.rejected.append((mid, reason))
            return
        if mid is None:
            mid = str(uuid.uuid4())  # Segment adds one: such a message never dedups
        if mid in self.seen_ids:
            self.stats.duplicates += 1
            return
        self.seen_ids.add(mid)
        self.stats.messages_accepted += 1
        if self.keep_messages:
            self.messages.append(msg)
        traits = msg.get("traits") or {}
        if msg["type"] == "identify":
            ident = f"user_id:{msg['userId']}" if msg.get("userId") else None
            ident = ident or f"anonymous_id:{msg['anonymousId']}"
            self.profiles.setdefault(("users", ident), {}).update(traits)
        elif msg["type"] == "group":
            self.profiles.setdefault(("accounts", f"group_id:{msg['groupId']}"), {}).update(traits)

    def _profile_traits(self, path: str, query: str, headers: Any) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.stats.profile_requests += 1
        if _basic_user(headers.get("Authorization")) not in self.profile_tokens:
            return 401, _profile_error("authentication_error", "Invalid access token.")
        match = _TRAITS_PATH.match(path)
        if not match:
            return 404, _profile_error("not_found", "Not found.")
        ident = unquote(match["ident"])
        with self._lock:
            traits = self.profiles.get((match["collection"], ident))
            traits = dict(traits) if traits is not None else None
        if match["space"] != self.space_id or traits is None:
            return 404, _profile_error("not_found", "Profile was not found.")
        params = parse_qs(query)
        try:
            limit = int(params.get("limit", ["10"])[0])
            offset = int(params.get("next", ["0"])[0] or 0)
        except ValueError:
            return 400, _profile_error("validation_error", "limit and next must be integers")
        if not 1 <= limit <= 200:
            return 400, _profile_error("validation_error", "limit must be between 1 and 200")
        if "include" in params:
            wanted = set(params["include"][0].split(","))
            traits = {k: v for k, v in traits.items() if k in wanted}
        names = sorted(traits)
        page = names[offset : offset + limit]
        more = offset + limit < len(names)
        cursor = {
            "url": path,
            "has_more": more,
            "next": str(offset + limit) if more else "",
            "limit": limit,
        }
        return 200, {"traits": {k: traits[k] for k in page}, "cursor": cursor}


def _profile_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _basic_user(header: str | None) -> str | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0]


def _invalid(msg: Any) -> str | None:
    """Why Segment would drop this message, or None."""
    if not isinstance(msg, dict):
        return "message is not an object"
    if msg.get("type") not in TRACKING_TYPES:
        return f"unknown type {msg.get('type')!r}"
    ids = [msg.get("userId"), msg.get("anonymousId")]
    if not any(isinstance(i, str) and i for i in ids):
        return "no_user_anon_id: userId or anonymousId is required"
    mid = msg.get("messageId")
    if mid is not None and (not isinstance(mid, str) or not 0 < len(mid) <= MAX_MESSAGE_ID_CHARS):
        return "messageId must be a string of 1-100 characters"
    traits = msg.get("traits")
    if traits is not None and not isinstance(traits, dict):
        return "traits must be an object"
    if traits is not None and len(traits) > MAX_TRAITS:
        return "300 or more traits"
    if msg["type"] == "group":
        gid = msg.get("groupId")
        if not isinstance(gid, str) or not gid or len(gid) > MAX_GROUP_ID_CHARS:
            return "groupId must be a non-empty string of at most 500 characters"
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    # Headers and body go out in two writes; with Nagle on, the body waits for the
    # client's delayed ACK (~40 ms a request).
    disable_nagle_algorithm = True
    server_version = "FakeSegment/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request on stderr would swamp test output

    @property
    def app(self) -> FakeSegmentServer:
        return self.server.app  # type: ignore[attr-defined]

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == LANDING_PATH:
            return self._landing("GET")
        if parts.path.startswith("/_fake/"):
            return self._admin_get(parts.path)
        with self.app._lock:
            faults = self.app._profile_faults
            fault = faults.popleft() if faults else None
        if fault is not None and not isinstance(fault, Delay):
            return self._apply(fault)
        if isinstance(fault, Delay):
            time.sleep(fault.seconds)
        status, body = self.app._profile_traits(parts.path, parts.query, self.headers)
        self._send_json(status, body)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        length = self.headers.get("Content-Length")
        if length is None:
            return self._send_json(411, {"code": "length_required", "message": "Content-Length"})
        raw = self.rfile.read(int(length))
        if path == LANDING_PATH:
            return self._landing("POST")
        if path.startswith("/_fake/"):
            return self._admin_post(path, raw)
        if not path.startswith("/v1/") or path.rsplit("/", 1)[-1] not in TRACKING_TYPES | {"batch"}:
            return self._send_json(404, {"code": "not_found", "message": path})
        fault = self.app._next_fault()
        if isinstance(fault, Delay):
            time.sleep(fault.seconds)
            fault = None
        if fault is not None and not fault.process:
            return self._apply(fault)
        try:
            status, answer = 200, self.app._track(path, self.headers, raw)
        except _Error as exc:
            status, answer = exc.status, {"code": exc.code, "message": exc.message}
        if fault is not None:
            return self._apply(fault)
        self._send_json(status, answer)

    def _apply(self, fault: Fault) -> None:
        if isinstance(fault, DropConnection):
            return self._drop()
        if isinstance(fault, HtmlPage):
            return self._send_raw(fault.status, "text/html; charset=utf-8", fault.body.encode())
        if isinstance(fault, Redirect):
            location = fault.location or self.app.url + LANDING_PATH
            return self._send_json(fault.status, {}, {"Location": location})
        if isinstance(fault, Trickle):
            return self._trickle(fault)
        assert isinstance(fault, Respond)
        body = fault.body if fault.body is not None else {"code": "injected", "message": "fault"}
        self._send_json(fault.status, body, fault.headers)

    def _send_raw(self, status: int, content_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _trickle(self, fault: Trickle) -> None:
        body = json.dumps({"success": True}).encode().ljust(fault.size)
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        self.close_connection = True
        slow = head + body if fault.head else body
        try:
            if not fault.head:
                self.wfile.write(head)
            for i in range(len(slow)):
                self.wfile.write(slow[i : i + 1])
                self.wfile.flush()
                time.sleep(fault.interval)
        except OSError:
            with self.app._lock:
                self.app.stats.trickles_cut += 1

    def _landing(self, method: str) -> None:
        with self.app._lock:
            self.app.stats.landing_requests += 1
            self.app.landing.append(
                {"method": method, "path": self.path, "headers": dict(self.headers.items())}
            )
        self._send_json(200, {"success": True})

    def _admin_get(self, path: str) -> None:
        app = self.app
        if path == "/_fake/stats":
            return self._send_json(200, app.snapshot())
        if path == "/_fake/rejected":
            with app._lock:
                return self._send_json(200, [list(r) for r in app.rejected])
        if path == "/_fake/landing":
            with app._lock:
                return self._send_json(200, list(app.landing))
        if path.startswith("/_fake/profiles/"):
            return self._send_json(200, app.collection(path.rsplit("/", 1)[-1]))
        self._send_json(404, {"code": "not_found", "message": path})

    def _admin_post(self, path: str, raw: bytes) -> None:
        if path == "/_fake/reset":
            self.app.reset()
        elif path == "/_fake/inject":
            self.app.inject(*(fault_from_json(spec) for spec in json.loads(raw or b"[]")))
        elif path == "/_fake/fail_every":
            spec = json.loads(raw)
            self.app.fail_every(int(spec["n"]), fault_from_json(spec["fault"]))
        elif path == "/_fake/clear_faults":
            self.app.clear_faults()
        else:
            return self._send_json(404, {"code": "not_found", "message": path})
        self._send_json(200, {"success": True})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--write-key", action="append", dest="write_keys")
    parser.add_argument("--profile-token", action="append", dest="tokens")
    parser.add_argument("--space-id", default="spa_test")
    parser.add_argument("--no-keep-messages", action="store_true")
    args = parser.parse_args(argv)
    server = FakeSegmentServer(
        write_keys=tuple(args.write_keys or ["test-write-key"]),
        profile_tokens=tuple(args.tokens or ["test-profile-token"]),
        space_id=args.space_id,
        host=args.host,
        port=args.port,
        keep_messages=not args.no_keep_messages,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with server:
        print(f"FAKE_SEGMENT_URL={server.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
