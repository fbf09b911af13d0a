"""The HTTP request handler: routes a request to the stand-in, applies faults, answers."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from sqltraits_kit.publishing.standin.faults import (
    LANDING_PATH,
    Delay,
    DropConnection,
    Fault,
    HtmlPage,
    Redirect,
    Respond,
    Trickle,
    fault_from_json,
)
from sqltraits_kit.publishing.standin.rules import TRACKING_TYPES, RequestError


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    # Headers and body go out in two writes; with Nagle on, the body waits for the
    # client's delayed ACK (~40 ms a request).
    disable_nagle_algorithm = True
    server_version = "FakeSegment/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request on stderr would swamp test output

    @property
    def app(self) -> Any:  # the FakeSegmentServer serving this request
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
            fault.wait()
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
            fault.wait()
            fault = None
        if fault is not None and not fault.process:
            return self._apply(fault)
        try:
            status, answer = 200, self.app._track(path, self.headers, raw)
        except RequestError as exc:
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
