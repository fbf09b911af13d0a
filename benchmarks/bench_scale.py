"""Publishing time at 100M profiles: our own publish throughput, measured, against Segment's limit.

    python -m benchmarks.bench_scale [--sizes 50000,100000,200000] [--runs 3] [--quick]

Nothing here can send 100M profiles to Segment, so the figure is a measured extrapolation:

1. **The kit alone.** ``sync()`` of ``--sizes`` fresh rows into an empty state (the kit sync of
   ``bench_sync``: checks, diff, paged read, encode, send, ledger and state commits), to the
   counting sink (``benchmarks/_sink.py``), client-side limits off. A straight line through
   (rows, seconds) gives a fixed cost per run and a cost per row; the cost per row is the kit's
   ceiling in messages/s on this machine.
2. **Paced as for Segment.** The same sync of ``--paced-rows`` rows with the kit's default
   client-side limit of 1,000 events/s (``SQLTRAITS_MAX_EVENTS_PER_SECOND``), which is Engage's
   documented inbound limit. The achieved rate shows the pacing holds the limit, and that the
   kit, not Segment, would be the bottleneck only if its own ceiling were below it.
3. **100M profiles.** For the day-over-day change rates the events benchmark measured and for a
   first publish of every profile: the time at the kit's ceiling and at Segment's 1,000 events/s
   (the larger one is the publishing time), plus the fixed cost.

Segment's figures (segmentio/segment-docs): Engage "Inbound Data Throughput: 1000 events per
second" (``src/engage/product-limits.md``, ``src/unify/product-limits.md``); the HTTP Tracking API
"recommends you to not exceed 1,000 requests per second" per workspace and answers 429 with
``Retry-After`` beyond (``src/connections/sources/catalog/libraries/server/http-api/index.md``,
"Rate limits"). With 500 messages per batch the request limit allows 500,000 messages/s, so
Engage's event limit is the one that binds.
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks import _harness as h
from benchmarks.bench_sync import _table_file

ENGAGE_EVENTS_PER_SECOND = 1_000  # src/engage/product-limits.md: Inbound Data Throughput
PROFILES = 100_000_000
#: share of profiles sent day over day: the events benchmark's figures (RESULTS.md, "Events
#: sent", 2026-12-07) and LTV's before its relative tolerance; 100% is a first publish.
CHANGE_RATES = (
    (0.01, "1% (a slow-moving trait)"),
    (0.064, "6.4% (LTV, today's trait set: relative tolerance)"),
    (0.095, "9.5% (churn, today's trait set)"),
    (0.201, "20.1% (LTV, its tolerances before 2026-12-07)"),
    (1.0, "100% (first publish)"),
)
DEFAULT_SIZES = (50_000, 100_000, 200_000)
QUICK_SIZES = (5_000, 10_000)


def _fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares line seconds = fixed + per_row * rows."""
    xs = [float(x) for x, _ in points]
    ys = [y for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    per_row = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return my - per_row * mx, per_row


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def main(argv: list[str] | None = None) -> int:
    p = h.parser("Publishing time at 100M profiles, from measured throughput and Segment's limit.")
    p.add_argument("--sizes", default=None, help="rows per measured sync, comma-separated")
    p.add_argument("--paced-rows", type=int, default=None, help="rows of the paced run (20,000)")
    args = h.parse(p, argv)
    sizes = (
        tuple(int(x) for x in args.sizes.split(","))
        if args.sizes
        else (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    )
    paced_rows = args.paced_rows or (3_000 if args.quick else 20_000)
    if len(sizes) < 2:
        p.error("--sizes needs at least two sizes to fit a line")
    bench = h.Bench(
        "scale",
        "Publishing time at 100M profiles (measured throughput × Segment's limit)",
        args,
        size=", ".join(f"{n:,}" for n in sizes) + f" rows; paced run {paced_rows:,} rows",
    )
    here = "benchmarks.bench_sync"
    points: list[tuple[int, float]] = []
    with h.FakeSegment(sink=True) as server:

        def after(result: dict[str, Any]) -> dict[str, Any]:
            accepted = server.stats()["messages_accepted"]
            return {"accepted": accepted, "lost": result["sent"] - accepted}

        hooks = {"before": server.reset, "after": after}
        common = {"url": server.url, "write_key": server.write_key}
        for n in sizes:
            m = bench.measure(
                f"{here}:kit_sync", {**common, "n": n, "pristine": str(_table_file(n))}, **hooks
            )
            if m.not_measured:
                bench.not_measured(f"sync() of {n:,} rows, no client-side limit", m.not_measured)
                return bench.finish()
            points.extend((n, r["seconds"]) for r in m.runs)
            bench.add(
                h.Row(
                    f"sync() of {n:,} rows, no client-side limit",
                    n / m["seconds"],
                    "msg/s",
                    note=f"{m['seconds']:.2f} s (runs {m.spread()}), CPU {m['cpu_seconds']:.1f} s,"
                    f" send {m['send_seconds']:.2f} s; lost {int(m.max('lost'))}; "
                    f"peak RSS {m['peak_rss_mb']:.0f} MB",
                )
            )
        paced = bench.measure(
            f"{here}:kit_sync",
            {
                **common,
                "n": paced_rows,
                "pristine": str(_table_file(paced_rows)),
                "events_per_second": float(ENGAGE_EVENTS_PER_SECOND),
            },
            runs=1,
            **hooks,
        )
    fixed, per_row = _fit(points)
    if per_row <= 0:  # sizes too close for the noise of a shared machine
        bench.not_measured("fit: the kit's ceiling", "no cost per row in the noise; larger sizes")
        return bench.finish()
    ceiling = 1 / per_row
    bench.add(
        h.Row(
            "fit: fixed cost per run",
            fixed,
            "s",
            note="least squares over every run: seconds = fixed + rows / ceiling",
        )
    )
    bench.add(h.Row("fit: the kit's ceiling (1 / cost per row)", ceiling, "msg/s"))
    paced_rate = paced["send_seconds"] and paced_rows / paced["send_seconds"]
    bench.add(
        h.Row(
            f"paced at {ENGAGE_EVENTS_PER_SECOND:,} events/s (the kit's default limit)",
            paced_rate,
            "msg/s",
            f"≤ {ENGAGE_EVENTS_PER_SECOND:,} (+ 1 s burst)",
            paced_rate <= ENGAGE_EVENTS_PER_SECOND * (1 + 1 / max(paced["send_seconds"], 1)),
            note=f"{paced_rows:,} rows sent in {paced['send_seconds']:.1f} s of a "
            f"{paced['seconds']:.1f} s sync; lost {int(paced.max('lost'))}",
        )
    )
    for share, label in CHANGE_RATES:
        events = PROFILES * share
        at_kit = fixed + events / ceiling
        at_segment = events / ENGAGE_EVENTS_PER_SECOND
        bench.add(
            h.Row(
                f"100M profiles, {label}: publishing time",
                _hours(max(at_kit, at_segment)),
                note=f"{events:,.0f} events; at Segment's {ENGAGE_EVENTS_PER_SECOND:,}/s "
                f"{_hours(at_segment)}, at the kit's ceiling {_hours(at_kit)}: "
                f"{'Segment' if at_segment >= at_kit else 'the kit'} sets the pace",
            )
        )
    bench.note(
        "Server: benchmarks/_sink.py (counts only). Segment's limits: Engage 1,000 events/s "
        "inbound (segment-docs src/engage/product-limits.md, src/unify/product-limits.md); "
        "HTTP API ≤ 1,000 requests/s per workspace, 429 + Retry-After beyond (src/connections/"
        "sources/catalog/libraries/server/http-api/index.md). One machine's publish; on Spark, "
        "BigQuery or Snowflake the checks and diff run in the engine and only the pages of "
        "changed rows reach the publishing process, so the per-row cost is the same encode and "
        "send measured here (docs/SCALE.md)."
    )
    return bench.finish()


if __name__ == "__main__":
    raise SystemExit(main())
