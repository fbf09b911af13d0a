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
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "MUTATION.md"
SCRATCH = ROOT / "benchmarks" / "out" / "mutation"


@dataclass(frozen=True)
class Target:
    #: fnmatch patterns of the files mutated (mutmut's ``only_mutate``), relative to the root.
    sources: tuple[str, ...]
    #: The test files run against each mutant: only those that exercise the module, so a
    #: mutant costs seconds (mutmut then runs, per mutant, only the tests that reach the
    #: mutated function).
    tests: tuple[str, ...]
    what: str
    #: Extra pytest arguments. By default the PostgreSQL half of the both-backend tests is left
    #: out: the rules are the same Ibis expressions on both, and it doubles every mutant's time.
    args: tuple[str, ...] = ("-m", "not postgres")
    #: Decorated functions to mutate anyway, as (file, decorator line, function): mutmut skips
    #: a decorated function, so the scratch copy applies the decorator after the function
    #: instead (``f = decorator(f)`` at the end of the module), which behaves the same.
    undecorate: tuple[tuple[str, str, str], ...] = ()

    @property
    def source(self) -> str:
        return ", ".join(self.sources)


_SYNC = "sqltraits_kit/publishing/sync/"
_SEGMENT = "sqltraits_kit/publishing/segment/"

#: The core, with the test files that exercise each module (the whole suite would take hours).
#: A package is named by its key files, not all of them (``contract``: the rule groups and the
#: report, not the face's re-exports).
TARGETS: dict[str, Target] = {
    "batching": Target(
        (_SEGMENT + "batching.py",),
        ("tests/segment/test_batching.py", "tests/segment/test_batching_properties.py"),
        "request bodies within Segment's limits",
    ),
    "retry": Target(
        (_SEGMENT + "retry.py",),
        (
            "tests/segment/test_retry_policy.py",
            "tests/segment/test_client.py",
            "tests/segment/test_client_status.py",
        ),
        "what is retried, backoff, Retry-After",
    ),
    "answer": Target(
        (_SEGMENT + "answer.py",),
        (
            "tests/segment/test_answer.py",
            "tests/segment/test_client_status.py",
            "tests/segment/test_delivery_faults.py",
        ),
        "which HTTP answer is Segment acknowledging a batch (never a 3xx)",
    ),
    "client": Target(
        (_SEGMENT + "client.py",),
        (
            "tests/segment/test_client.py",
            "tests/segment/test_client_status.py",
            "tests/segment/test_delivery_faults.py",
        ),
        "what counts as delivered, results in order, rate limits",
    ),
    "diff": Target(
        (_SYNC + "diff.py",),
        (
            "tests/sync/test_diff_categories.py",
            "tests/sync/test_sync_diff.py",
            "tests/sync/test_sync_edges.py",
            "tests/sync/test_sync_resume.py",
        ),
        "the diff: categories, the tolerance boundary, uncertain rows",
    ),
    "publisher": Target(
        (_SYNC + "publisher.py",),
        (
            "tests/sync/test_publisher_rules.py",
            "tests/sync/test_sync_ledger.py",
            "tests/sync/test_sync_resume.py",
            "tests/sync/test_sync_faults.py",
        ),
        "the sending half: ledger writes only for what was acknowledged",
    ),
    "state": Target(
        (_SYNC + "state.py",),
        (
            "tests/sync/test_state_rules.py",
            "tests/sync/test_sync_ledger.py",
            "tests/sync/test_sync_resume.py",
            "tests/sync/test_sync_diff.py",
            "tests/sync/test_sync_options.py",
        ),
        "the sync's state tables (the ledger, compaction)",
    ),
    "engine": Target(
        (_SYNC + "engine.py",),
        (
            "tests/sync/test_engine_rules.py",
            "tests/sync/test_sync_options.py",
            "tests/sync/test_sync_dry_run_call.py",
            "tests/sync/test_sync_diff.py",
            "tests/sync/test_sync_edges.py",
            "tests/sync/test_sync_gates.py",
            "tests/sync/test_sync_resume.py",
            "tests/sync/test_sync_ledger.py",
            "tests/sync/test_sync_faults.py",
        ),
        "the sync run: checks, lease, diff, record",
        undecorate=((_SYNC + "engine.py", "@lz.scoped", "sync"),),
    ),
    "contract": Target(
        tuple(f"sqltraits_kit/traits/contract/{m}.py" for m in ("shape", "identifier")),
        ("tests/test_contract_rules.py", "tests/test_contract.py", "tests/test_edge_values.py"),
        "the contract's shape, type and identifier rules (25 columns, finite, unique ids)",
    ),
    "traitset": Target(
        ("sqltraits_kit/traits/traitset/resolving.py",),
        ("tests/test_traitset_resolve.py", "tests/test_traitset.py"),
        "trait-set resolution: rounding, tiers, quantiles, flags",
    ),
    "scoring": Target(
        (
            "sqltraits_kit/traits/scoring/sklearn_path.py",
            "sqltraits_kit/traits/scoring/scratch.py",
        ),
        ("tests/test_parity_check.py", "tests/test_scoring_parity.py", "tests/test_scoring.py"),
        "the scoring parity check and the streamed fallback",
    ),
    "features": Target(
        ("sqltraits_kit/modelling/features.py",),
        ("tests/test_features_edges.py", "tests/test_features.py"),
        "features and labels (point-in-time cutoff)",
    ),
    "btyd": Target(
        ("sqltraits_kit/modelling/btyd.py",),
        ("tests/test_btyd.py",),
        "BG/NBD, modified BG/NBD and Gamma-Gamma",
    ),
}


def _copy_tree(dest: Path, *, keep_results: bool) -> None:
    """The working tree (tracked and new files, not ignored ones) into ``dest``; with
    ``keep_results`` the earlier run's ``mutants/`` (mutmut's mutants and results) stays."""
    if dest.exists():
        for child in dest.iterdir():
            if keep_results and child.name == "mutants":
                continue
            shutil.rmtree(child) if child.is_dir() else child.unlink()
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


def _undecorate(dest: Path, target: Target) -> None:
    """In the scratch copy, move each of ``target.undecorate``'s decorators from its function's
    head to a plain call after the module's last line, so that mutmut mutates the function."""
    for rel, decorator, function in target.undecorate:
        path = dest / rel
        lines = path.read_text().splitlines()
        opening = f"def {function}("
        head = [
            i
            for i, line in enumerate(lines[:-1])
            if line.split("#")[0].strip() == decorator and lines[i + 1].startswith(opening)
        ]
        if len(head) != 1:
            raise SystemExit(f"{rel}: {decorator} before def {function}( not found once")
        del lines[head[0]]
        call = f"{function} = {decorator.lstrip('@')}({function})  # benchmarks.mutation"
        lines += ["", call, ""]
        path.write_text("\n".join(lines))


def _write_config(
    dest: Path,
    target: Target,
    *,
    skip: tuple[str, ...] = (),
    timeout_multiplier: float | None = None,
) -> list[str]:
    """The scratch copy's pyproject, with a ``[tool.mutmut]`` section for this module only;
    returns the test files selected. ``timeout_multiplier``: mutmut's (its default is 15)."""
    text = (dest / "pyproject.toml").read_text()
    text = re.sub(r"(?ms)^\[tool\.mutmut\].*?(?=^\[|\Z)", "", text)
    tests = [t for t in target.tests if (dest / t).exists() and t not in skip]
    section = {
        "source_paths": ["sqltraits_kit"],
        "only_mutate": list(target.sources),
        "pytest_add_cli_args_test_selection": tests,
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-q", "-x", *target.args],
        "also_copy": ["benchmarks", "sample_data", "traitsets", "models", "examples"],
    }
    if timeout_multiplier is not None:
        # mutmut stops a mutant after (its tests' measured time + 1 s) x this many seconds of
        # wall time (twice that of CPU time): 15 lets a mutant that loops take 15 minutes.
        section["timeout_multiplier"] = timeout_multiplier
    lines = ["", "[tool.mutmut]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in section.items()]
    (dest / "pyproject.toml").write_text(text.rstrip() + "\n" + "\n".join(lines) + "\n")
    tomllib.loads((dest / "pyproject.toml").read_text())  # fail here, not inside mutmut
    return tests


def _keep_results_for(dest: Path, tests: list[str]) -> None:
    """Tell mutmut the test selection is the one its results were made with.

    mutmut drops every result when the selection changes; adding a test file only adds tests,
    so a killed mutant stays killed: mutmut then collects the new tests' coverage and the
    mutants not killed are run again. (mutmut 3's fingerprint: a hash of the selection.)
    """
    stats = dest / "mutants" / "mutmut-stats.json"
    if not stats.exists():
        return
    data = json.loads(stats.read_text())
    digest = hashlib.sha256(repr(tuple(tests)).encode()).hexdigest()[:12]
    data.setdefault("config_fingerprint", {})["test_selection"] = digest
    stats.write_text(json.dumps(data))


#: mutmut's exit codes by outcome (mutmut 3's ``status_by_exit_code``); anything else is
#: "suspicious".
_OUTCOME = {
    1: "killed",
    3: "killed",
    36: "timeout",
    24: "timeout",
    -24: "timeout",
    152: "timeout",
    255: "timeout",
    37: "caught_by_type_check",
    0: "survived",
    5: "no_tests",
    33: "no_tests",
    34: "skipped",
    None: "not_run",
}


def _counts(dest: Path, only: tuple[str, ...] = ()) -> dict[str, int]:
    """Mutants per outcome from mutmut's results, only those matching ``only`` if given."""
    counts = {"total": 0}
    for meta in sorted((dest / "mutants").rglob("*.py.meta")):
        for key, code in json.loads(meta.read_text()).get("exit_code_by_key", {}).items():
            if only and not any(fnmatch(key, p) for p in only):
                continue
            outcome = _OUTCOME.get(code, "suspicious")
            counts[outcome] = counts.get(outcome, 0) + 1
            counts["total"] += 1
    return counts


def _env() -> dict[str, str]:
    # mutmut puts its mutated copy first on sys.path; a PYTHONPATH pointing at the checkout
    # would make the tests import the unmutated package and "kill" nothing.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # One pytest session per mutant: build the sample warehouse once, not once per mutant.
    env["SQLTRAITS_TEST_SAMPLE_DIR"] = str(SCRATCH / "_sample")
    return env


def _env_for(target: Target) -> dict[str, str]:
    env = _env()
    if not any(s.startswith("sqltraits_kit/modelling/") for s in target.sources):
        # Scoring and the modules above it cannot change a fitted model: fit them once.
        env["SQLTRAITS_TEST_MODELS_DIR"] = str(SCRATCH / "_models")
    return env


#: mutmut's exit codes of a mutant the tests did not kill (survived, no test reached it,
#: suspicious, not run yet).
_NOT_KILLED = {0, 5, 33, 35, None}


def _not_killed(dest: Path, *, only_unrun: bool = False) -> list[str]:
    """The mutants of the last run in ``dest`` that the tests did not kill (not run yet)."""
    wanted = {None} if only_unrun else _NOT_KILLED
    names = []
    for meta in sorted((dest / "mutants").rglob("*.py.meta")):
        codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
        names += [key for key, code in codes.items() if code in wanted]
    return names


def run(
    name: str,
    *,
    jobs: int,
    again: bool = False,
    only: tuple[str, ...] = (),
    skip: tuple[str, ...] = (),
    resume: bool = False,
    record_only: bool = False,
    timeout_multiplier: float | None = None,
) -> dict[str, int]:
    """Mutate one target and record its score. ``again``: keep the last run's results and run
    only the mutants it did not kill (after adding tests: a killed mutant stays killed).
    ``only``: mutmut name patterns (``'*x_diff_table*'``) to run a module's key functions.
    ``skip``: test files of the target left out (the "before" run of tests added since).
    ``resume``: like ``again`` but only the mutants not run yet (an interrupted run).
    ``record_only``: run nothing, write the last run's score into MUTATION.md again.
    ``timeout_multiplier``: mutmut's, lower than its 15 so a mutant that loops is stopped in
    minutes (changing it between runs makes mutmut rerun the mutants that timed out)."""
    target = TARGETS[name]
    dest = SCRATCH / name
    if record_only:
        counts = _counts(dest, only)
        _record(name, target, counts, minutes=0.0, only=only)
        return counts
    again = (again or resume) and (dest / "mutants").is_dir()
    _copy_tree(dest, keep_results=again)
    _undecorate(dest, target)
    tests = _write_config(dest, target, skip=skip, timeout_multiplier=timeout_multiplier)
    if again:
        _keep_results_for(dest, tests)
    started = dt.datetime.now(dt.UTC)
    names = list(only)
    if again:
        left = _not_killed(dest, only_unrun=resume)
        names = [n for n in left if not only or any(fnmatch(n, p) for p in only)]
    if names or not again:
        subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs), *names],
            cwd=dest,
            check=True,
            env=_env_for(target),
        )
    counts = _counts(dest, only)
    minutes = (dt.datetime.now(dt.UTC) - started).total_seconds() / 60
    _record(name, target, counts, minutes=minutes, only=only)
    return counts


def score(counts: dict[str, int]) -> float:
    """Killed share of the mutants that ran: a timeout counts as killed (the test noticed), one
    that no selected test reaches ("no tests") as not killed (nothing would notice it)."""
    killed = (
        counts.get("killed", 0) + counts.get("timeout", 0) + counts.get("caught_by_type_check", 0)
    )
    ran = killed + counts.get("survived", 0) + counts.get("suspicious", 0)
    ran += counts.get("no_tests", 0)
    return killed / ran if ran else float("nan")


_HEADER = (
    "| module | mutated | mutants | killed | survived | no tests | not run | score "
    "| date (UTC) | minutes |\n"
    "|---|---|---|---|---|---|---|---|---|---|\n"
)


def _row(
    name: str,
    target: Target,
    counts: dict[str, int] | None,
    *,
    minutes: float,
    only: tuple[str, ...] = (),
) -> str:
    what = f"`{target.source}`" + (f" only {', '.join(f'`{p}`' for p in only)}" if only else "")
    if counts is None:
        return f"| {name} | {what} | | | | | | not run yet | | |"
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    return (
        f"| {name} | {what} | {counts.get('total', 0)} | {killed} | "
        f"{counts.get('survived', 0)} | {counts.get('no_tests', 0)} | "
        f"{counts.get('not_run', 0)} | {score(counts):.0%} | "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} | {minutes:.1f} |"
    )


def _record(
    name: str,
    target: Target,
    counts: dict[str, int],
    *,
    minutes: float,
    only: tuple[str, ...] = (),
) -> None:
    """Replace this module's row in the table of MUTATION.md, keeping every other row."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    start, end = "<!-- scores:start -->", "<!-- scores:end -->"
    scores = text.split(start, 1)[1].split(end, 1)[0] if start in text and end in text else ""
    rows = {}
    for line in scores.splitlines():  # the score table only, not the notes' tables below it
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in TARGETS:
            rows[cells[0]] = line
    rows[name] = _row(name, target, counts, minutes=minutes, only=only)
    table = _HEADER + "\n".join(
        rows.get(key, _row(key, t, None, minutes=0)) for key, t in TARGETS.items()
    )
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
    parser.add_argument(
        "--again",
        action="store_true",
        help="keep the last run's results and run only the mutants it did not kill",
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="run nothing: write the score of the last run (with the same --only) again",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the last run's results and run only the mutants it has not run yet",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="mutmut names to run, e.g. '*x_diff_table*' (repeatable)",
    )
    parser.add_argument(
        "--skip-tests",
        action="append",
        default=[],
        metavar="FILE",
        help="leave out one of the target's test files (the score before it was added)",
    )
    parser.add_argument(
        "--timeout-multiplier",
        type=float,
        default=None,
        metavar="X",
        help="stop a mutant after X times its tests' measured time, plus X seconds "
        "(mutmut's default 15; 3 stops a mutant that loops in minutes)",
    )
    args = parser.parse_args(argv)
    if args.list or not args.modules:
        for key, t in TARGETS.items():
            print(f"{key:10} {t.source}  <- {' '.join(t.tests)}")
        return 0
    unknown = [m for m in args.modules if m not in TARGETS]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {', '.join(TARGETS)}")
    for name in args.modules:
        counts = run(
            name,
            jobs=args.jobs,
            again=args.again,
            only=tuple(args.only),
            skip=tuple(args.skip_tests),
            resume=args.resume,
            record_only=args.record,
            timeout_multiplier=args.timeout_multiplier,
        )
        print(f"{name}: {score(counts):.0%} killed ({counts})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
