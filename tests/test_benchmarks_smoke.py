"""The benchmark scripts run end to end at a tiny size, so they cannot rot unnoticed.

Only the features and diff scripts (the others need trained models or minutes of sending); one
run each, on a 2,000-customer sample built under ``benchmarks/out/``. No time is asserted: the
figures of a shared machine are not a test. What is asserted is what must hold at any size: the
three ways of computing features agree, every diff contender finds exactly the changed rows,
and the results file gets a section with a figure and a target.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from benchmarks._harness import ROOT, write_section

pytestmark = pytest.mark.slow


def _run(module: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", module, "--quick", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_features_benchmark_runs_and_the_three_ways_agree(tmp_path):
    results = tmp_path / "RESULTS.md"
    out = _run("benchmarks.bench_features", "--customers", "2000", "--results", str(results))
    parity = next(line for line in out.splitlines() if line.startswith("parity:"))
    assert re.search(r"\s(PASS|MISS)\s", parity).group(1) == "PASS", parity
    text = results.read_text()
    assert "<!-- section:features:start -->" in text
    assert "| speed-up vs pandas (wall) |" in text and "≥ 4x" in text
    assert "Machine:" in text and "duckdb" in text


def test_diff_benchmark_finds_exactly_the_changed_rows(tmp_path):
    out = _run("benchmarks.bench_diff", "--rows", "3000", "--no-results")
    table = out.split("Diff (1% of a published table changed)")[-1]
    assert "WRONG" not in table, table
    assert table.count("found all changed rows") >= 3, table  # kit, SQL and pandas at least
    assert "NOT MEASURED" not in table, table


def test_results_sections_are_replaced_in_place(tmp_path):
    path = tmp_path / "RESULTS.md"
    write_section(path, "diff", "## Diff\n\nfigure-one\n")
    write_section(path, "features", "## Features\n\nfigure-two\n")
    write_section(path, "diff", "## Diff\n\nfigure-three\n")
    text = path.read_text()
    assert "figure-one" not in text and "figure-three" in text and "figure-two" in text
    assert text.index("## Features") < text.index("## Diff")  # the order
