"""A minimal Tracking API sink: parses each batch, counts messages and distinct messageIds.

    python -m benchmarks._sink --port 0 --write-key KEY   # prints FAKE_SEGMENT_URL=http://...

The strict stand-in (``sqltraits_kit/publishing/standin/``) validates every message in Python
(it re-serialises each one to measure it), which costs about as much CPU per message as a fast
client spends building it: at high rates the fake, not the client, sets the pace. This sink does
only what counting needs — Basic auth, one ``json.loads`` per request, a set of messageIds — so
``bench_sync --server sink`` measures the clients themselves. It speaks the fake's admin
endpoints used by the benchmarks (``/_fake/stats``, ``/_fake/reset``) with the same field names.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _State:
    def __init__(self, write_key: str) -> None:
        self.auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.ids: set[str] = set()
            self.stats = {
                "requests": 0,
                "messages_received": 0,
                "messages_accepted": 0,
                "duplicates": 0,
                "messages_rejected": 0,
                "messages_dropped": 0,
            }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def state(self) -> _State:
        return self.server.state  # type: ignore[attr-defined]

    def _answer(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/_fake/stats":
            with self.state.lock:
                return self._answer(200, dict(self.state.stats))
        self._answer(404, {"message": self.path})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/_fake/reset":
            self.state.reset()
            return self._answer(200, {"success": True})
        if self.path != "/v1/batch":
            return self._answer(404, {"message": self.path})
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        try:
            body = json.loads(raw)
        except ValueError:
            return self._answer(400, {"message": "invalid JSON"})
        state = self.state
        if self.headers.get("Authorization") != state.auth and body.get("writeKey") is None:
            return self._answer(401, {"message": "invalid write key"})
        batch = body.get("batch") or []
        with state.lock:
            stats = state.stats
            stats["requests"] += 1
            stats["messages_received"] += len(batch)
            for msg in batch:
                mid = msg.get("messageId")
                if mid in state.ids:
                    stats["duplicates"] += 1
                else:
                    state.ids.add(mid)
                    stats["messages_accepted"] += 1
        self._answer(200, {"success": True})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--write-key", required=True)
    args = p.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _Handler)
    server.daemon_threads = True
    server.state = _State(args.write_key)  # type: ignore[attr-defined]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    print(f"FAKE_SEGMENT_URL=http://{host}:{port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
