"""sqltraits history: the publish runs recorded in a warehouse, and the rows still failing."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "history",
        help="list publish runs (newest first), or the rows still failing",
        description="List the Segment publish runs recorded in the warehouse, newest first: "
        "counts of new, changed, removed, unchanged, sent and failed rows, requests, status. "
        "--failed lists the rows that failed and have not been delivered since (the next run "
        "sends them again).",
    )
    p.add_argument("--db", help="warehouse URL (default: $SQLTRAITS_DB_URL; one is required)")
    p.add_argument("--sync-key", metavar="NAME", help="only this sync key (a trait set's name)")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N rows (50)")
    p.add_argument("--failed", action="store_true", help="list the failed rows instead of runs")
    p.add_argument("--run-id", help="with --failed: the rows that failed in this run")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


COUNTED = ("rows", "new", "changed", "removed", "unchanged", "sent", "failed", "requests")


def _records(frame) -> list[dict]:
    import math

    out = []
    for row in frame.to_dict(orient="records"):
        clean = {}
        for key, value in row.items():
            if hasattr(value, "isoformat"):
                value = value.isoformat()
            elif hasattr(value, "item"):
                value = value.item()
            if isinstance(value, float) and math.isnan(value):
                value = None
            clean[key] = value
        out.append(clean)
    return out


def run(args: argparse.Namespace) -> int:
    import json

    from sqltraits_kit import formatting as fmt
    from sqltraits_kit.cli import env_settings
    from sqltraits_kit.errors import ConfigError
    from sqltraits_kit.publishing.sync import failed_rows, history
    from sqltraits_kit.publishing.sync.destination import display
    from sqltraits_kit.warehouse import connect

    if args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}")
    if args.run_id and not args.failed:
        raise ConfigError("--run-id goes with --failed")
    try:
        url = args.db or env_settings().db_url
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not url:
        raise ConfigError("--db (or $SQLTRAITS_DB_URL) is required")
    wh = connect(url, read_only=True)
    try:
        if args.failed:
            frame = failed_rows(wh, run_id=args.run_id, sync_key=args.sync_key, limit=args.limit)
        else:
            frame = history(wh, sync_key=args.sync_key, limit=args.limit)
    finally:
        wh.close()
    key = "failed" if args.failed else "runs"
    if args.json:
        print(json.dumps({key: _records(frame)}, ensure_ascii=False, default=str))
        return 0
    if frame.empty:
        print("no failed rows" if args.failed else "no publish runs recorded yet")
        return 0
    if args.failed:
        for row in _records(frame):
            print(
                f"{row['sync_key']}  {row['identifier']}  attempts {fmt.count(row['attempts'])}  "
                f"{fmt.count(row['payload_bytes'])} bytes  run {row['run_id']}: {row['reason']}"
            )
        return 0
    for row in _records(frame):
        n = {k: fmt.count(row[k]) for k in COUNTED}
        print(
            f"{fmt.instant(row['started_at'])}  {row['run_id']}  {row['sync_key']}  "
            f"{row['status']:<11} rows {n['rows']}  new {n['new']}  changed {n['changed']}  "
            f"removed {n['removed']}  unchanged {n['unchanged']}  sent {n['sent']}  "
            f"failed {n['failed']}  requests {n['requests']}  {fmt.seconds(row['duration_s'])}"
            + f"  to {display(row.get('destination'))}"
            + (f"  ({row['error']})" if row.get("error") else "")
        )
    return 0
