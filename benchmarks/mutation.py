"""Mutation testing of the core modules with mutmut, one module at a time.

    python -m benchmarks.mutation --list                 # the modules and their test files
    python -m benchmarks.mutation batching               # one module (minutes, not hours)
    python -m benchmarks.mutation batching retry -j 1    # several, one worker each

Each run copies the working tree into ``benchmarks/out/mutation/<module>/`` (mutmut rewrites the
source it mutates and keeps its state beside it, so the checkout is never touched), writes a
``[tool.mutmut]`` section that mutates only that module and runs only the test files that exercise
it, runs ``mutmut run``, and records the score with the date in ``benchmarks/MUTATION.md``
(one row per module, replaced on each run). Survivors are listed in the scratch directory:
``cd benchmarks/out/mutation/<module> && mutmut results`` / ``mutmut show NAME``.

It is slow on purpose and so kept out of ``.ci/run``: it runs the selected tests once per mutant.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "MUTATION.md"
SCRATCH = ROOT / "benchmarks" / "out" / "mutation"


@dataclass(frozen=True)
class Target:
    source: str
    tests: tuple[str, ...]
    what: str


#: The core, with the test files that exercise each module (the whole suite would take hours).
TARGETS: dict[str, Target] = {
    "batching": Target(
        "sqltraits_kit/publishing/segment/batching.py",
        ("tests/segment/test_batching.py", "tests/segment/test_batching_properties.py"),
        "request bodies within Segment's limits",
    ),
    "retry": Target(
        "sqltraits_kit/publishing/segment/retry.py",
        (
            "tests/segment/test_retry_policy.py",
            "tests/segment/test_client.py",
            "tests/segment/test_client_status.py",
        ),
        "what is retried, backoff, Retry-After",
    ),
    "client": Target(
        "sqltraits_kit/publishing/segment/client.py",
        (
            "tests/segment/test_client.py",
            "tests/segment/test_client_status.py",
            "tests/sync/test_sync_faults.py",
        ),
        "what counts as delivered",
    ),
    "engine": Target(
        "sqltraits_kit/publishing/sync/engine.py",
        ("tests/sync/",),
        "the sync: commit only what was acknowledged",
    ),
    "state": Target(
        "sqltraits_kit/publishing/sync/state.py",
        ("tests/sync/",),
        "the sync's state tables",
    ),
    "contract": Target(
        "sqltraits_kit/traits/contract/*.py",
        ("tests/test_contract.py", "tests/test_edge_values.py"),
        "the output table's contract (25 columns, names, types)",
    ),
    "traitset": Target(
        "sqltraits_kit/traits/traitset/*.py",
        ("tests/test_traitset.py",),
        "trait-set resolution: rounding, tiers, flags",
    ),
    "scoring": Target(
        "sqltraits_kit/traits/scoring/*.py",
        ("tests/test_scoring.py", "tests/test_scoring_parity.py"),
        "in-warehouse scoring and its parity check",
    ),
    "features": Target(
        "sqltraits_kit/modelling/features.py",
        ("tests/test_features.py",),
        "features and labels (point-in-time cutoff)",
    ),
    "btyd": Target(
        "sqltraits_kit/modelling/btyd.py",
        ("tests/test_btyd.py",),
        "BG/NBD and Gamma-Gamma",
    ),
}


def _copy_tree(dest: Path) -> None:
    """The working tree (tracked and new files, not ignored ones) into ``dest``."""
    if dest.exists():
        shutil.rmtree(dest)
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for rel in files:
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _write_config(dest: Path, target: Target) -> None:
    """The scratch copy's pyproject, with a ``[tool.mutmut]`` section for this module only."""
    text = (dest / "pyproject.toml").read_text()
    text = re.sub(r"(?ms)^\[tool\.mutmut\].*?(?=^\[|\Z)", "", text)
    tests = [t for t in target.tests if (dest / t).exists()]
    section = {
        "source_paths": ["sqltraits_kit"],
        "only_mutate": [target.source],
        "pytest_add_cli_args_test_selection": tests,
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-q", "-x"],
        "also_copy": ["benchmarks", "sample_data", "traitsets", "models", "examples"],
    }
    lines = ["", "[tool.mutmut]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in section.items()]
    (dest / "pyproject.toml").write_text(text.rstrip() + "\n" + "\n".join(lines) + "\n")
    tomllib.loads((dest / "pyproject.toml").read_text())  # fail here, not inside mutmut


def _counts(dest: Path) -> dict[str, int]:
    subprocess.run(
        [sys.executable, "-m", "mutmut", "export-cicd-stats"], cwd=dest, check=True, env=_env()
    )
    stats = json.loads((dest / "mutants" / "mutmut-cicd-stats.json").read_text())
    return {k: int(v) for k, v in stats.items() if isinstance(v, int | float)}


def _env() -> dict[str, str]:
    # mutmut puts its mutated copy first on sys.path; a PYTHONPATH pointing at the checkout
    # would make the tests import the unmutated package and "kill" nothing.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run(name: str, *, jobs: int) -> dict[str, int]:
    target = TARGETS[name]
    dest = SCRATCH / name
    _copy_tree(dest)
    _write_config(dest, target)
    started = dt.datetime.now(dt.UTC)
    subprocess.run(
        [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs)],
        cwd=dest,
        check=True,
        env=_env(),
    )
    counts = _counts(dest)
    minutes = (dt.datetime.now(dt.UTC) - started).total_seconds() / 60
    _record(name, target, counts, minutes=minutes)
    return counts


def score(counts: dict[str, int]) -> float:
    """Killed share of the mutants that ran; a timeout counts as killed (the test noticed)."""
    killed = (
        counts.get("killed", 0) + counts.get("timeout", 0) + counts.get("caught_by_type_check", 0)
    )
    ran = killed + counts.get("survived", 0) + counts.get("suspicious", 0)
    return killed / ran if ran else float("nan")


_HEADER = (
    "| module | source | mutants | killed | survived | no tests | score | date (UTC) | minutes |\n"
    "|---|---|---|---|---|---|---|---|---|\n"
)


def _row(name: str, target: Target, counts: dict[str, int] | None, *, minutes: float) -> str:
    if counts is None:
        return f"| {name} | `{target.source}` | | | | | not run yet | | |"
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    return (
        f"| {name} | `{target.source}` | {counts.get('total', 0)} | {killed} | "
        f"{counts.get('survived', 0)} | {counts.get('no_tests', 0)} | {score(counts):.0%} | "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} | {minutes:.1f} |"
    )


def _record(name: str, target: Target, counts: dict[str, int], *, minutes: float) -> None:
    """Replace this module's row in the table of MUTATION.md, keeping every other row."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in TARGETS:
            rows[cells[0]] = line
    rows[name] = _row(name, target, counts, minutes=minutes)
    table = _HEADER + "\n".join(
        rows.get(key, _row(key, t, None, minutes=0)) for key, t in TARGETS.items()
    )
    start, end = "<!-- scores:start -->", "<!-- scores:end -->"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = f"{before}{start}\n{table}\n{end}{after}"
    else:
        text = f"# Mutation scores\n\n{start}\n{table}\n{end}\n"
    RESULTS.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"any of: {', '.join(TARGETS)}")
    parser.add_argument("--list", action="store_true", help="print the modules and their tests")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="mutmut workers (default 1)")
    args = parser.parse_args(argv)
    if args.list or not args.modules:
        for key, t in TARGETS.items():
            print(f"{key:10} {t.source}  <- {' '.join(t.tests)}")
        return 0
    unknown = [m for m in args.modules if m not in TARGETS]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {', '.join(TARGETS)}")
    for name in args.modules:
        counts = run(name, jobs=args.jobs)
        print(f"{name}: {score(counts):.0%} killed ({counts})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
