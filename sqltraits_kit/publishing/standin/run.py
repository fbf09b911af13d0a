"""``python -m sqltraits_kit.publishing.standin``: serve until interrupted."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading

from sqltraits_kit.publishing.standin.server import FakeSegmentServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sqltraits_kit.publishing.standin",
        description="A local stand-in for Segment's Tracking API and Profile API",
    )
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
