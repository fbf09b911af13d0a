"""Memory vs size: peak RSS of a full ``sync()`` at two table sizes (500k and 5M rows).

    python -m benchmarks.bench_sync_memory [--small N] [--large N] [--runs R] [--quick]

Each run publishes a whole table (every row new, so every row is diffed, read, encoded, sent and
committed to the state) from a scratch copy of a cached DuckDB file to a local server
(``benchmarks/_sink.py`` by default, ``--server fake`` for the project's fake Segment), in its
own process; the figure is that process's peak RSS. The kit reads the rows to
send in fixed pages and holds at most ``2 × concurrency`` batches in flight, so its memory should
not grow with the table: the target is at most 1.2x from 500k to 5M rows.
"""

from __future__ import annotations

import sys
from typing import Any

from benchmarks import _harness as h
from benchmarks.bench_sync import _table_file

SMALL, LARGE = 500_000, 5_000_000
QUICK_SMALL, QUICK_LARGE = 20_000, 200_000


def main(argv: list[str] | None = None) -> int:
    p = h.parser("Sync peak RSS at two table sizes.")
    p.add_argument("--small", type=int, default=None, help=f"rows (default {SMALL:,})")
    p.add_argument("--large", type=int, default=None, help=f"rows (default {LARGE:,})")
    p.add_argument(
        "--memory-limit",
        default="256MB",
        help="also measure with this DuckDB memory_limit (passed in the warehouse URL); "
        "'' to skip (default 256MB)",
    )
    p.add_argument(
        "--server",
        choices=("fake", "sink"),
        default="sink",
        help="sink: benchmarks/_sink.py (default: memory does not depend on the server, and the "
        "validating fake would hold 5M profiles and set the pace); fake: the project's fake",
    )
    args = h.parse(p, argv)
    small = args.small or (QUICK_SMALL if args.quick else SMALL)
    large = args.large or (QUICK_LARGE if args.quick else LARGE)
    bench = h.Bench(
        "sync_memory", "Memory vs size (sync peak RSS)", args, size=f"{small:,} and {large:,} rows"
    )
    variants = {"": "default settings"}
    if args.memory_limit:
        variants[f"memory_limit={args.memory_limit}"] = f"DuckDB memory_limit={args.memory_limit}"
    found: dict[tuple[str, int], h.Measurement] = {}
    with h.FakeSegment(sink=args.server == "sink") as server:

        def after(result: dict[str, Any]) -> dict[str, Any]:
            stats = server.stats()
            return {"lost": result["sent"] - stats["messages_accepted"]}

        for options in variants:
            for n in (small, large):
                pristine = str(_table_file(n))
                found[options, n] = bench.measure(
                    "benchmarks.bench_sync:kit_sync",
                    {
                        "url": server.url,
                        "write_key": server.write_key,
                        "n": n,
                        "pristine": pristine,
                        "duckdb_options": options,
                    },
                    before=server.reset,
                    after=after,
                )
    for options, variant in variants.items():
        reference = bool(options)
        for n in (small, large):
            m = found[options, n]
            label = f"sync peak RSS, {n:,} rows, {variant}"
            if m.not_measured:
                bench.not_measured(label, m.not_measured)
                continue
            bench.add(
                h.Row(
                    label,
                    m["peak_rss_mb"],
                    "MB",
                    note=f"{m['seconds']:.1f} s, {n / m['seconds']:,.0f} msg/s; "
                    f"{int(m.max('lost'))} lost; RSS after imports {m['rss_before_mb']:.0f} MB",
                )
            )
        a, b = found[options, small], found[options, large]
        label = f"growth {small:,} → {large:,} rows, {variant}"
        if a.not_measured or b.not_measured:
            bench.not_measured(label, a.not_measured or b.not_measured or "", target="≤ 1.2x")
            continue
        growth = h.ratio(b["peak_rss_mb"], a["peak_rss_mb"])
        bench.add(
            h.Row(
                label,
                growth,
                "x",
                "" if reference else "≤ 1.2x",
                None if reference else h.at_most(growth, 1.2),
                note="what-if: the same sync with DuckDB's memory capped (URL option)"
                if reference
                else "",
            )
        )
    bench.note(
        "Peak RSS of the whole sync process, interpreter and imports included. Server: "
        + ("benchmarks/_sink.py (counts only)" if args.server == "sink" else "the fake Segment")
        + "; every row is new, so every row is diffed, read, sent and committed."
    )
    return bench.finish()


if __name__ == "__main__":
    sys.exit(main())
