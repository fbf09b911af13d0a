"""sqltraits tables: list a warehouse's tables with row counts."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("tables", help="list tables, schemas and row counts")
    p.add_argument("--db", help="warehouse URL (default: the demo sample)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    import json

    from sqltraits_kit.warehouse import connect

    wh = connect(args.db, read_only=True)
    info = {
        name: {"rows": rows, "columns": dict(wh.describe(name))}
        for name, rows in wh.row_counts().items()
    }
    if args.json:
        print(json.dumps({"warehouse": wh.display_url, "tables": info}))
    else:
        for name, item in info.items():
            print(f"{name:<24} {item['rows']:>12,}  {', '.join(item['columns'])}")
    return 0
