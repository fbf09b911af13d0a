"""sqltraits standin: a local Segment stand-in for demos, and what it now holds per profile."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "standin",
        help="serve a local Segment stand-in on 127.0.0.1 (nothing leaves this machine)",
        description="Accepts Segment's Tracking API like Segment does (limits, dedup by "
        "messageId, nulls) and keeps the traits per profile. Publish to it with "
        "SEGMENT_ENDPOINT=<its URL> and its write key, then look with --show.",
    )
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (8765)")
    p.add_argument("--write-key", default="local-demo", help="the key it accepts (local-demo)")
    p.add_argument(
        "--show",
        metavar="URL",
        help="print what a running stand-in holds (e.g. http://127.0.0.1:8765) and exit",
    )
    p.add_argument("--accounts", action="store_true", help="with --show: accounts, not users")
    p.add_argument("--json", action="store_true", help="with --show: one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    if args.show:
        return _show(args)
    import contextlib
    import signal
    import threading

    from sqltraits_kit.publishing.standin import FakeSegmentServer

    server = FakeSegmentServer(write_keys=(args.write_key,), port=args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with server:
        print(f"local Segment stand-in on {server.url} — nothing leaves this machine", flush=True)
        print(f"  publish:  SEGMENT_ENDPOINT={server.url} SEGMENT_WRITE_KEY={args.write_key} \\")
        print("            sqltraits sync --trait-set traitsets/churn.toml")
        print(f"  look:     sqltraits standin --show {server.url}")
        print("  stop:     Ctrl-C", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


def _show(args: argparse.Namespace) -> int:
    import json

    import requests

    from sqltraits_kit.errors import ConfigError

    collection = "accounts" if args.accounts else "users"
    url = args.show.rstrip("/") + f"/_fake/profiles/{collection}"
    if not url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        raise ConfigError("--show reads a local stand-in only (http://127.0.0.1:PORT)")
    try:
        answer = requests.get(url, timeout=10, allow_redirects=False)
        answer.raise_for_status()
        profiles = answer.json()
    except (requests.RequestException, ValueError) as exc:
        raise ConfigError(f"no stand-in answers at {args.show}: {exc}") from None
    if args.json:
        print(json.dumps({"collection": collection, "profiles": profiles}))
        return 0
    print(f"{len(profiles):,} {collection} hold traits (local stand-in, {args.show}):")
    for ident, traits in list(profiles.items())[:20]:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(traits.items()))
        print(f"  {ident}: {shown}")
    if len(profiles) > 20:
        print(f"  … and {len(profiles) - 20:,} more (--json for all)")
    return 0
