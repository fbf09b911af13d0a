"""Run every benchmark, one after the other, with the same options.

    python -m benchmarks.run_all [--customers N] [--runs R] [--quick] [--only a,b]

Options are passed on to each script (``--customers``, ``--seed``, ``--runs``, ``--quick``,
``--results``, ``--no-results``). Scripts run in separate processes, in the order of
``RESULTS.md``; one that fails is reported and the others still run. Exit code 1 if any failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from benchmarks._harness import ROOT

SCRIPTS = {
    "features": "benchmarks.bench_features",
    "scoring": "benchmarks.bench_scoring",
    "diff": "benchmarks.bench_diff",
    "sync": "benchmarks.bench_sync",
    "sync_memory": "benchmarks.bench_sync_memory",
    "scale": "benchmarks.bench_scale",
    "events_sent": "benchmarks.bench_events_sent",
    "app": "benchmarks.bench_app",
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--only", default=",".join(SCRIPTS), help="comma-separated: " + ", ".join(SCRIPTS)
    )
    args, passed = p.parse_known_args(argv)
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SCRIPTS]
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(unknown)}")
    failed = []
    for name in wanted:
        print(f"\n=== {name} ({SCRIPTS[name]} {' '.join(passed)})", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", SCRIPTS[name], *passed], cwd=ROOT)
        print(f"=== {name}: exit {code} after {time.perf_counter() - started:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
