"""sqltraits load: copy tables (by default the demo sample) from one warehouse to another."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("load", help="copy the sample (or named tables) into another warehouse")
    p.add_argument("--from", dest="source", required=True, help="source warehouse URL")
    p.add_argument("--to", dest="dest", required=True, help="destination URL, e.g. postgres://...")
    p.add_argument("--table", action="append", dest="tables", help="table to copy (repeatable)")
    return p


def run(args: argparse.Namespace) -> int:
    import sys

    from sqltraits_kit.warehouse import SAMPLE_TABLES, connect, copy_tables

    source = connect(args.source, read_only=True)
    dest = connect(args.dest, create=True)  # loading into a new DuckDB file is deliberate

    def progress(message: str, fraction: float) -> None:
        print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    copied = copy_tables(source, dest, tables=args.tables or SAMPLE_TABLES, progress=progress)
    for name, rows in copied.items():
        print(f"{name}: {rows:,} rows")
    return 0
