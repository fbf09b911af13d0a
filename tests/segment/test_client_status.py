"""Only a 2xx is an acknowledgement: a 3xx is never counted as delivered.

A client that took "any status below 400" as success passed every client and fault test,
because the fake Segment never answers 3xx. A proxy or a misconfigured endpoint can (a 304
from a cache, a 300 or a 302 without Location), and the messages were then never seen by
Segment. This uses its own small server on 127.0.0.1 that answers a chosen status, through
the public `SegmentClient` API only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sqltraits_kit.publishing.segment import (
    DeliveryStatus,
    EncodedMessage,
    SegmentClient,
    pack_batches,
)


class _StatusServer(ThreadingHTTPServer):
    daemon_threads = True
    status = 200
    posts = 0


class _Handler(BaseHTTPRequestHandler):
    server: _StatusServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.posts += 1
        # Segment's success body, so only the status decides (no Location on a 3xx).
        body = b'{"success": true}'
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # keep pytest's output clean
        pass


@pytest.fixture
def status_server() -> Iterator[_StatusServer]:
    server = _StatusServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def _client(server: _StatusServer, sleeps: list[float]) -> SegmentClient:
    return SegmentClient(
        "wk_status_test",
        endpoint=f"http://127.0.0.1:{server.server_address[1]}",
        max_requests_per_second=None,
        max_events_per_second=None,
        concurrency=1,
        timeout=5,
        sleep=sleeps.append,
    )


def _batches(n: int = 3):
    msgs = [
        EncodedMessage(message_id=f"m{i}", data=f'{{"messageId":"m{i}"}}'.encode(), key=i)
        for i in range(n)
    ]
    return list(pack_batches(msgs))


@pytest.mark.parametrize("status", [300, 302, 304, 307, 399])
def test_a_3xx_is_not_delivered(status_server: _StatusServer, status: int):
    status_server.status = status
    sleeps: list[float] = []
    with _client(status_server, sleeps) as client:
        (batch,) = _batches()
        result = client.send_batch(batch)
        summary = client.send_batches(_batches())
    assert result.status is not DeliveryStatus.DELIVERED
    assert not result.ok
    assert result.http_status == status
    assert result.error is not None and f"({status}" in result.error
    assert summary.delivered_messages == 0
    assert summary.failed_messages == 3
    assert not summary.ok


def test_a_2xx_is_delivered_by_the_same_server(status_server: _StatusServer):
    # The control: the server above does answer, and a 2xx is an acknowledgement.
    status_server.status = 200
    with _client(status_server, []) as client:
        summary = client.send_batches(_batches())
    assert summary.delivered_messages == 3
    assert summary.ok
    assert status_server.posts == 1
