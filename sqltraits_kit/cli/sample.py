"""sqltraits sample: build the demo warehouse."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("sample", help="build the demo DuckDB warehouse (Segment-shaped tables)")
    p.add_argument(
        "--db",
        required=True,
        help="the DuckDB warehouse to write: a URL like every other command's "
        "(duckdb:///data/sample.duckdb) or a plain file path",
    )
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
    from sqltraits_kit.formatting import seconds
    from sqltraits_kit.warehouse.sample import build_sample

    if args.customers < 1:
        raise ConfigError(f"--customers must be at least 1, got {args.customers}")
    path = _duckdb_file(args.db)

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
    print(f"wrote {report.path} in {seconds(report.seconds)}: {counts}")
    return 0


def _duckdb_file(db: str) -> str:
    """The file a ``--db`` names: a ``duckdb://`` URL read as every command reads it, or a path."""
    from pathlib import Path

    from sqltraits_kit.errors import ConfigError
    from sqltraits_kit.warehouse.urls import duckdb_target, scheme_of

    scheme = scheme_of(db)
    if not scheme:
        return db
    if scheme != "duckdb":
        raise ConfigError(
            f"sample builds a DuckDB file, not a {scheme} warehouse: build it with "
            "--db duckdb:///sample.duckdb, then copy it with "
            "`sqltraits load --from duckdb:///sample.duckdb --to <URL>`"
        )
    target, query = duckdb_target(db)
    if not isinstance(target, Path) or query:
        raise ConfigError(
            f"--db must name a DuckDB file, e.g. duckdb:///data/sample.duckdb: {db!r}"
        )
    return str(target)
