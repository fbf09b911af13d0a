"""``sync()`` throughput of this checkout against another git revision, runs interleaved.

    python -m benchmarks.ab_sync --ref 9773315 [--messages 100000] [--rounds 4] [--cli]

Both sides publish the same table of ``--messages`` fresh rows into an empty state (the kit sync
of ``bench_sync``) to one counting sink (``benchmarks/_sink.py``), alternating before/after so
that load on a shared machine hits both alike; prints each run and the medians with their ratio.
The other revision is checked out once as a git worktree under ``benchmarks/out/ab/``. Used for
the delivery ledger's "throughput does not regress by more than 10%" (issue 11).

``--cli`` times the whole ``sqltraits sync`` command instead (issue 15): a fresh interpreter per
run, from the process start to its exit (imports, settings, connect, checks, diff, send, state
commits, the report), on a scratch copy of the same table, client-side rate limits off. With no
``--ref`` it measures this checkout alone, ``sync()`` in process and the CLI, interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks import _harness as h

_CHILD = r"""
import json, sys
from benchmarks import bench_sync as b
n, url, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
print("RESULT=" + json.dumps(b.kit_sync(url, key, n, str(b._table_file(n))), default=str))
"""


_CLI_CHILD = r"""
import json, os, shutil, subprocess, sys, time, uuid
from pathlib import Path
from benchmarks import bench_sync as b
n, url, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
pristine = b._table_file(n)
work = pristine.with_name(f"cli-work-{uuid.uuid4().hex[:8]}.duckdb")
shutil.copyfile(pristine, work)
env = dict(os.environ, SEGMENT_WRITE_KEY=key, SEGMENT_ENDPOINT=url)
env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: the kit's modules byte-compiled
command = [sys.executable, "-m", "sqltraits_kit", "sync", "--db", f"duckdb://{work}",
           "--table", "traits", "--max-requests-per-second", "0",
           "--max-events-per-second", "0", "--json"]
try:
    import resource
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
finally:
    work.unlink(missing_ok=True)
    Path(str(work) + ".wal").unlink(missing_ok=True)
if proc.returncode != 0:
    sys.exit(proc.stderr[-3000:])
out = json.loads(proc.stdout)
print("RESULT=" + json.dumps({"seconds": seconds, "cpu_seconds": cpu, "delivered": out["sent"]}))
"""


def _worktree(ref: str) -> Path:
    target = h.OUT / "ab" / ref.replace("/", "_")
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(target), ref], cwd=h.ROOT, check=True
        )
    return target


def _run(root: Path, n: int, url: str, key: str, *, cli: bool = False) -> dict:
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.run(
        [sys.executable, "-c", _CLI_CHILD if cli else _CHILD, str(n), url, key],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT=")]
    if not lines:
        raise SystemExit(f"the run in {root} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[0].removeprefix("RESULT="))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref", help="the git revision to compare with (none: this checkout only)")
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--cli", action="store_true", help="time the whole `sqltraits sync` command")
    args = p.parse_args(argv)
    if args.ref:
        sides = {"before": (_worktree(args.ref), args.cli), "after": (h.ROOT, args.cli)}
    else:  # this checkout, in process and through the CLI
        sides = {"sync()": (h.ROOT, False), "cli": (h.ROOT, True)}
    seconds: dict[str, list[float]] = {k: [] for k in sides}
    cpu: dict[str, list[float]] = {k: [] for k in sides}
    with h.FakeSegment(sink=True) as server:
        if args.cli:  # one untimed run per side, so every timed run finds the byte code
            for root, _cli in sides.values():
                _run(root, 1_000, server.url, server.write_key, cli=True)
        for i in range(args.rounds):
            for name, (root, cli) in sides.items():
                r = _run(root, args.messages, server.url, server.write_key, cli=cli)
                if r.get("delivered") != args.messages:
                    raise SystemExit(f"{name}: delivered {r.get('delivered')} of {args.messages}")
                seconds[name].append(r["seconds"])
                cpu[name].append(r["cpu_seconds"])
                print(f"{name:<6} round {i}: {r['seconds']:.2f} s, CPU {r['cpu_seconds']:.2f} s")
    med = {k: statistics.median(v) for k, v in seconds.items()}
    for k, v in med.items():
        c = statistics.median(cpu[k])
        print(f"{k:<6} median {v:.2f} s = {args.messages / v:,.0f} rows/s; CPU {c:.2f} s")
    first, second = list(med)
    print(f"{second} / {first} (time): {med[second] / med[first]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
