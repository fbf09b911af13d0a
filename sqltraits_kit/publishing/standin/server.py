"""The stand-in server: its state (profiles, messages, stats), fault queues and both APIs."""

from __future__ import annotations

import dataclasses
import gzip
import json
import ssl
import sys
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

from sqltraits_kit.publishing.standin.faults import Fault
from sqltraits_kit.publishing.standin.handler import Handler
from sqltraits_kit.publishing.standin.rules import (
    MAX_BATCH_BODY_BYTES,
    MAX_BATCH_MESSAGES,
    MAX_MESSAGE_BYTES,
    TRAITS_PATH,
    RequestError,
    basic_auth_user,
    message_size,
    profile_error,
    reject_constant,
    why_dropped,
)


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
        self._httpd = _QuietServer((host, port), Handler)
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
            raise RequestError(400, "invalid_content_type", "Content-Type must be application/json")
        if headers.get("Content-Encoding", "").lower() == "gzip":
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError) as exc:
                raise RequestError(400, "invalid_gzip", str(exc)) from None
            with self._lock:
                self.stats.gzip_requests += 1
        single = path != "/v1/batch"
        limit = MAX_MESSAGE_BYTES if single else MAX_BATCH_BODY_BYTES
        if len(raw) > limit:
            raise RequestError(400, "payload_too_large", f"body is {len(raw)} bytes; limit {limit}")
        try:
            body = json.loads(raw, parse_constant=reject_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(400, "invalid_json", f"invalid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise RequestError(400, "invalid_json", "body must be a JSON object")
        key = basic_auth_user(headers.get("Authorization")) or body.get("writeKey")
        if key not in self.write_keys:
            raise RequestError(401, "invalid_write_key", "invalid write key")
        if single:
            kind = path.rsplit("/", 1)[-1]
            messages = [{**body, "type": body.get("type", kind)}]
        else:
            messages = body.get("batch")
            if not isinstance(messages, list):
                raise RequestError(400, "invalid_batch", "'batch' must be an array")
        if len(messages) > MAX_BATCH_MESSAGES:
            with self._lock:  # Segment answers 200 and drops them all
                self.stats.messages_dropped += len(messages)
            return {"success": True}
        for msg in messages:
            if message_size(msg) > MAX_MESSAGE_BYTES:
                raise RequestError(400, "message_too_large", "a message is over 32 KB")
        with self._lock:
            self.stats.accepted_requests += 1
            self.stats.bytes_received += len(raw)
            for msg in messages:
                self._accept(msg)
        return {"success": True}

    def _accept(self, msg: Any) -> None:
        self.stats.messages_received += 1
        reason = why_dropped(msg)
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
        if basic_auth_user(headers.get("Authorization")) not in self.profile_tokens:
            return 401, profile_error("authentication_error", "Invalid access token.")
        match = TRAITS_PATH.match(path)
        if not match:
            return 404, profile_error("not_found", "Not found.")
        ident = unquote(match["ident"])
        with self._lock:
            traits = self.profiles.get((match["collection"], ident))
            traits = dict(traits) if traits is not None else None
        if match["space"] != self.space_id or traits is None:
            return 404, profile_error("not_found", "Profile was not found.")
        params = parse_qs(query)
        try:
            limit = int(params.get("limit", ["10"])[0])
            offset = int(params.get("next", ["0"])[0] or 0)
        except ValueError:
            return 400, profile_error("validation_error", "limit and next must be integers")
        if not 1 <= limit <= 200:
            return 400, profile_error("validation_error", "limit must be between 1 and 200")
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
