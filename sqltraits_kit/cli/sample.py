"""sqltraits sample: build the demo warehouse."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("sample", help="build the demo DuckDB warehouse (Segment-shaped tables)")
    p.add_argument("--db", required=True, help="path of the DuckDB file to write")
    p.add_argument("--customers", type=int, default=50_000, help="number of customers (50000)")
    p.add_argument("--seed", type=int, default=7, help="random seed (7)")
    p.add_argument(
        "--memory-limit",
        default="1GB",
        help="DuckDB memory cap while building; spills to disk beyond it (1GB)",
    )
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    return p


def run(args: argparse.Namespace) -> int:
    import sys

    from sqltraits_kit.errors import ConfigError
    from sqltraits_kit.warehouse.sample import build_sample

    if args.customers < 1:
        raise ConfigError(f"--customers must be at least 1, got {args.customers}")
    path = args.db.removeprefix("duckdb://") if args.db.startswith("duckdb://") else args.db

    def progress(message: str, fraction: float) -> None:
        if not args.quiet:
            print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    report = build_sample(
        path,
        customers=args.customers,
        seed=args.seed,
        progress=progress,
        memory_limit=args.memory_limit,
    )
    counts = ", ".join(f"{name} {rows:,}" for name, rows in report.row_counts.items())
    print(f"wrote {report.path} in {report.seconds:.1f} s: {counts}")
    return 0
