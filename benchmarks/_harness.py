"""What every benchmark script shares: one subprocess per measurement, medians, tables, RESULTS.md.

Each measurement runs in a fresh ``python -m benchmarks._harness child module:function`` process,
so its peak RSS (``ru_maxrss`` of that process, read inside it) belongs to that measurement alone
and no cache or import survives from the one before. The function returns a dict of figures
(``seconds`` at least); the parent takes the median of each figure over ``--runs`` runs and
records the 1-minute load average before each run, because the machines are shared and noisy.

A script builds a :class:`Bench`, adds :class:`Row` figures with their targets, and calls
:meth:`Bench.finish`, which prints the table and rewrites the script's section of
``benchmarks/RESULTS.md`` (only for full-size runs, or when ``--results`` names a file).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import importlib
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
DEFAULT_CUSTOMERS = 1_000_000
QUICK_CUSTOMERS = 20_000
DEFAULT_SEED = 7
RESULT_PREFIX = "BENCH_RESULT="
#: Sections of RESULTS.md, in the order the issue lists them.
#: The sections of RESULTS.md, in order. Only text inside a section's markers survives a
#: script rewriting its own section: hand-written notes get a section of their own.
SECTIONS = (
    "summary",  # written by hand after a full run: targets missed, bottlenecks, fixes
    "features",
    "scoring",
    "diff",
    "sync",
    "sync_sink",
    "ledger_ab",  # by hand: benchmarks.ab_sync before and after the delivery ledger
    "sync_memory",
    "sync_memory_notes",  # by hand: per-phase profile
    "events_sent",
    "app",
)


class NotMeasured(Exception):
    """A figure cannot be taken (a module of the kit is missing); the reason is printed."""


# --------------------------------------------------------------------------- in the child


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_mb() -> float:
    """Current resident set size of this process, in MB (from /proc; 0 where there is none)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds`` (wall) and ``t.cpu`` (CPU, all threads).

    CPU time is reported beside wall time because it is far less sensitive to other load on a
    shared machine: two ways of doing the same work compare better by CPU when the load is high.
    """

    seconds: float = 0.0
    cpu: float = 0.0

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        self._cpu = cpu_seconds()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self._start
        self.cpu = cpu_seconds() - self._cpu

    def figures(self, **extra: Any) -> dict[str, Any]:
        return {"seconds": self.seconds, "cpu_seconds": self.cpu, **extra}


def require(module: str) -> Any:
    """Import a kit module, or raise :class:`NotMeasured` naming it when it is not there (yet)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module or module.startswith(exc.name + ".")):
            raise NotMeasured(f"{module} missing") from None
        raise


def _child(target: str, kwargs_json: str) -> int:
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    rss_before = rss_mb()
    try:
        result = dict(func(**json.loads(kwargs_json)))
    except NotMeasured as exc:
        result = {"not_measured": str(exc)}
    result.setdefault("peak_rss_mb", peak_rss_mb())
    result.setdefault("rss_at_start_mb", rss_before)
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)
    return 0


# --------------------------------------------------------------------------- in the parent


class ChildFailed(RuntimeError):
    pass


def run_child(
    target: str,
    kwargs: dict[str, Any] | None = None,
    *,
    timeout: float = 3600,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``module:function(**kwargs)`` in a fresh interpreter; its figures as a dict."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [full_env.get("PYTHONPATH")])]
    )
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks._harness", "child", target, json.dumps(kwargs or {})],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
    raise ChildFailed(f"{target} failed (exit {proc.returncode}):\n{tail}")


@dataclass
class Measurement:
    """Medians over runs of every numeric figure a child returned, plus the raw runs."""

    runs: list[dict[str, Any]]
    loads: list[float]
    not_measured: str | None = None

    def __getitem__(self, key: str) -> Any:
        values = [r[key] for r in self.runs if key in r]
        if not values:
            raise KeyError(key)
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            return statistics.median(values)
        return values[-1]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def max(self, key: str) -> Any:
        return max(r[key] for r in self.runs if key in r)

    def spread(self, key: str = "seconds") -> str:
        values = sorted(r[key] for r in self.runs if key in r)
        if len(values) < 2:
            return ""
        return f"{_num(values[0])}–{_num(values[-1])}"


def measure(
    target: str,
    kwargs: dict[str, Any] | None = None,
    *,
    runs: int,
    timeout: float = 3600,
    before: Callable[[], None] | None = None,
    after: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Measurement:
    """``runs`` runs of ``target``; ``before()`` runs ahead of each, ``after(result)`` can add
    figures taken outside the child (e.g. what a server received)."""
    results: list[dict[str, Any]] = []
    loads: list[float] = []
    for _ in range(max(1, runs)):
        if before is not None:
            before()
        loads.append(os.getloadavg()[0])
        result = run_child(target, kwargs, timeout=timeout)
        if "not_measured" in result:
            return Measurement([], loads, not_measured=result["not_measured"])
        if after is not None:
            result = {**result, **after(result)}
        results.append(result)
    return Measurement(results, loads)


# --------------------------------------------------------------------------- samples


def code_tag(*paths: str) -> str:
    """8 hex characters of a hash over the kit source files a cached set-up depends on, so a
    cache built by older code is never reused (a folder means every ``.py``/``.toml`` in it)."""
    import hashlib

    digest = hashlib.sha256()
    for rel in paths:
        path = ROOT / rel
        files = (
            sorted(p for p in path.rglob("*") if p.suffix in (".py", ".toml"))
            if path.is_dir()
            else [path]
        )
        for file in files:
            digest.update(str(file.relative_to(ROOT)).encode())
            digest.update(file.read_bytes() if file.exists() else b"-")
    return digest.hexdigest()[:8]


SAMPLE_CODE = ("sqltraits_kit/warehouse/sample.py",)


def sample_path(customers: int, seed: int) -> Path:
    return OUT / f"sample-c{customers}-s{seed}-{code_tag(*SAMPLE_CODE)}.duckdb"


def _build_sample_child(path: str, customers: int, seed: int) -> dict[str, Any]:
    from sqltraits_kit.warehouse.sample import build_sample

    report = build_sample(path, customers=customers, seed=seed)
    return {"seconds": report.seconds, "rows": report.row_counts}


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_sample(customers: int, seed: int) -> Path:
    """The cached demo warehouse for (customers, seed), built once under ``benchmarks/out/``."""
    path = sample_path(customers, seed)
    with _lock(path.name):
        if not path.exists():
            print(f"building the {customers:,}-customer sample (seed {seed}) in {path} ...")
            result = run_child(
                "benchmarks._harness:_build_sample_child",
                {"path": str(path), "customers": customers, "seed": seed},
            )
            print(f"  built in {result['seconds']:.1f} s: {result['rows']}")
    return path


def ensure_file(name: str, build: Callable[[Path], None]) -> Path:
    """A cached derived file under ``benchmarks/out/``, built by ``build(path)`` when missing."""
    path = OUT / name
    with _lock(name):
        if not path.exists():
            tmp = path.with_name(path.name + ".building")
            if tmp.is_dir():
                shutil.rmtree(tmp)
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            build(tmp)
            tmp.rename(path)
    return path


# --------------------------------------------------------------------------- fake Segment


FAKE_WRITE_KEY = "bench-write-key"


class FakeSegment:
    """The project's strict fake Segment server (``sqltraits_kit/publishing/standin/``) in its own
    process, as Segment would be: it does not compete with the client for the GIL."""

    def __init__(self, *, write_key: str = FAKE_WRITE_KEY, sink: bool = False) -> None:
        self.write_key = write_key
        self.kind = "sink" if sink else "fake"
        if sink:  # benchmarks/_sink.py: counts only, so the clients set the pace
            module, args = "benchmarks._sink", ["--port", "0", "--write-key", write_key]
        else:
            module = "tests.segment.fake_segment"
            args = ["--port", "0", "--write-key", write_key, "--no-keep-messages"]
        self._proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self._proc.stdout.readline().strip() if self._proc.stdout else ""
        if not line.startswith("FAKE_SEGMENT_URL="):
            self.stop()
            raise ChildFailed(f"the fake Segment server did not start: {line!r}")
        self.url = line.split("=", 1)[1]

    def _call(self, method: str, path: str) -> Any:
        import requests

        response = requests.request(method, self.url + path, timeout=60)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self._call("POST", "/_fake/reset")
        self._cpu_mark = self.cpu_seconds()

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (from /proc; 0 where there is none)."""
        try:
            fields = Path(f"/proc/{self._proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def cpu_since_reset(self) -> float:
        return self.cpu_seconds() - getattr(self, "_cpu_mark", 0.0)

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_fake/stats")

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        if self._proc.stdout:
            self._proc.stdout.close()

    def __enter__(self) -> FakeSegment:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# --------------------------------------------------------------------------- arguments


def parser(description: str, *, runs: int = 3) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--customers",
        type=int,
        default=None,
        help=f"customers in the sample (default {DEFAULT_CUSTOMERS:,}; --quick: "
        f"{QUICK_CUSTOMERS:,})",
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="sample seed (default 7)")
    p.add_argument("--runs", type=int, default=None, help=f"runs per figure (default {runs})")
    p.add_argument(
        "--quick", action="store_true", help="smoke run: small sample, one run, no RESULTS.md"
    )
    p.add_argument(
        "--results",
        type=Path,
        default=None,
        help="write the section into this file (default: benchmarks/RESULTS.md for full-size "
        "runs only)",
    )
    p.add_argument("--no-results", action="store_true", help="never write RESULTS.md")
    p.set_defaults(default_runs=runs)
    return p


def parse(p: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = p.parse_args(argv)
    if args.customers is None:
        args.customers = QUICK_CUSTOMERS if args.quick else DEFAULT_CUSTOMERS
    if args.runs is None:
        args.runs = 1 if args.quick else args.default_runs
    if args.customers < 1 or args.runs < 1:
        p.error("--customers and --runs must be at least 1")
    if args.no_results:
        args.results = None
    elif args.results is None and args.customers == DEFAULT_CUSTOMERS and not args.quick:
        args.results = RESULTS
    return args


# --------------------------------------------------------------------------- figures


@dataclass
class Row:
    """One line of a results table: a figure, its unit, and its target if it has one."""

    label: str
    value: float | str | None
    unit: str = ""
    target: str = ""
    ok: bool | None = None  # None: no target (a reference figure)
    note: str = ""

    @property
    def status(self) -> str:
        if self.value is None:
            return "NOT MEASURED"
        return "" if self.ok is None else ("PASS" if self.ok else "MISS")

    def figure(self) -> str:
        if self.value is None:
            return "—"
        if isinstance(self.value, str):
            return self.value
        return f"{_num(self.value)} {self.unit}".strip()


def _num(x: float) -> str:
    if x != x:  # NaN
        return "nan"
    ax = abs(x)
    if ax >= 10_000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    if ax == 0:
        return "0"
    if ax >= 0.001:
        return f"{x:.3f}"
    return f"{x:.1e}"


def at_most(value: float | None, bound: float) -> bool | None:
    return None if value is None else value <= bound


def at_least(value: float | None, bound: float) -> bool | None:
    return None if value is None else value >= bound


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


@dataclass
class Bench:
    """One script's results: rows, notes, and where they go."""

    key: str
    title: str
    args: argparse.Namespace
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    size: str = ""  # what was measured, e.g. "200,000 messages"; default: the sample's size

    def __post_init__(self) -> None:
        if not self.size:
            self.size = f"{self.args.customers:,} customers (seed {self.args.seed})"

    def measure(
        self,
        target: str,
        kwargs: dict[str, Any] | None = None,
        *,
        runs: int | None = None,
        **hooks: Any,
    ) -> Measurement:
        m = measure(target, kwargs, runs=runs or self.args.runs, **hooks)
        self.loads.extend(m.loads)
        return m

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(f"  {row.label}: {row.figure()} {row.status}".rstrip(), flush=True)
        return row

    def not_measured(self, label: str, reason: str, *, target: str = "") -> Row:
        return self.add(Row(label, None, target=target, note=f"not measured: {reason}"))

    def note(self, text: str) -> None:
        self.notes.append(text)

    # ---- output
    def table(self) -> str:
        headers = ["figure", "value", "target", "status", "note"]
        lines = [[r.label, r.figure(), r.target or "—", r.status or "—", r.note] for r in self.rows]
        widths = [
            max(len(h), *(len(x[i]) for x in lines)) if lines else len(h)
            for i, h in enumerate(headers)
        ]
        out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
        out.append("  ".join("-" * w for w in widths))
        out += ["  ".join(c.ljust(w) for c, w in zip(x, widths, strict=True)) for x in lines]
        return "\n".join(line.rstrip() for line in out)

    def markdown(self) -> str:
        load = _load_text(self.loads)
        head = [
            f"## {self.title}",
            "",
            f"Measured {self.started:%Y-%m-%d %H:%M} UTC · {self.size} · "
            f"median of {self.args.runs} run(s) · "
            f"1-min load average before the runs {load} · commit {_git_rev()}",
            "",
            "| figure | value | target | status | note |",
            "|---|---|---|---|---|",
        ]
        for r in self.rows:
            cells = [r.label, r.figure(), r.target or "—", r.status or "—", r.note or ""]
            head.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        if self.notes:
            head.append("")
            head += [f"- {n}" for n in self.notes]
        return "\n".join(head) + "\n"

    def finish(self) -> int:
        print()
        print(
            f"{self.title} — {self.size}, median of {self.args.runs} run(s), "
            f"load average {_load_text(self.loads)}"
        )
        print(self.table())
        for n in self.notes:
            print(f"- {n}")
        if self.args.results is not None:
            write_section(self.args.results, self.key, self.markdown())
            print(f"\nwrote the {self.key!r} section of {self.args.results}")
        return 0


def _load_text(loads: Sequence[float]) -> str:
    if not loads:
        return "n/a"
    lo, hi = min(loads), max(loads)
    return f"{lo:.2f}" if abs(hi - lo) < 0.005 else f"{lo:.2f}–{hi:.2f}"


# --------------------------------------------------------------------------- RESULTS.md


def _git_rev() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return rev + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_text() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f", {kb / 1024 / 1024:.0f} GB RAM"
    return f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}"


def versions_text() -> str:
    dists = [
        "sqltraits-kit",
        "ibis-framework",
        "duckdb",
        "sqlglot",
        "pandas",
        "pyarrow",
        "numpy",
        "scikit-learn",
        "requests",
        "streamlit",
        "plotly",
        "segment-analytics-python",
    ]
    parts = [f"Python {platform.python_version()}"]
    parts += [f"{d} {_version(d)}" for d in dists]
    return ", ".join(parts)


_HEADER = """# Benchmark results

Written by the scripts in this folder (`python -m benchmarks.run_all`, or one script each; see
`README.md`). Each section says when it was measured, at what size, how many runs the median is
of, and the 1-minute load average of the machine before the runs: the machines are shared, so a
figure taken under load is slower than the code is. Each figure has its target beside it;
PASS/MISS compares the median with the target.

- Machine: {machine}
- Versions: {versions}
- Last written: {when} UTC
"""

_SECTION = re.compile(r"<!-- section:(\w+):start -->\n(.*?)<!-- section:\1:end -->\n", re.S)


def write_section(path: Path, key: str, text: str) -> None:
    """Replace the ``key`` section of ``path`` (creating the file), keeping everything else as
    it is: the other sections and the text written by hand between them. A new section goes
    before the first section that follows it in ``SECTIONS`` (at the end otherwise)."""
    path = Path(path)
    header = _HEADER.format(
        machine=machine_text(),
        versions=versions_text(),
        when=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
    )
    block = f"\n<!-- section:{key}:start -->\n{text}<!-- section:{key}:end -->\n"
    old = path.read_text() if path.exists() else ""
    first = old.find("\n<!-- section:")
    rest = old[first:] if first >= 0 else ""
    mine = re.search(
        rf"\n<!-- section:{key}:start -->\n.*?<!-- section:{key}:end -->\n", rest, re.S
    )
    if mine:
        rest = rest[: mine.start()] + block + rest[mine.end() :]
    else:
        later = SECTIONS[SECTIONS.index(key) + 1 :] if key in SECTIONS else ()
        found = [m for m in _SECTION.finditer(rest) if m.group(1) in later]
        at = rest.rfind("\n", 0, found[0].start()) if found else len(rest)
        rest = rest[:at] + block + rest[at:]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(header + rest)
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 3 and argv[0] == "child":
        return _child(argv[1], argv[2])
    print("usage: python -m benchmarks._harness child module:function '<json kwargs>'")
    return 2


if __name__ == "__main__":
    sys.exit(main())
