"""Issue 17 item 9 in the CLI: every number, date and "not applicable" a command prints goes
through ``sqltraits_kit.formatting`` -- the journey's commands against the demo sample, read
as a person reads them."""

from __future__ import annotations

import re

import pytest

from sqltraits_kit.cli import main
from tests.support import ROOT, SAMPLE_CUSTOMERS
from tests.support.readable import raw_renderings
from tests.support.segment import WRITE_KEY

pytestmark = pytest.mark.slow


def test_raw_renderings_are_caught():
    """The checks can fail: each catches what it names."""
    for bad in (
        "auc 0.885213",
        "started 2026-11-01T14:03:00",
        "wrote 37518 rows",
        "pr_auc 0.3",
        "mae None",
        "at 20.00 requests/s",
    ):
        assert raw_renderings(bad), bad
    assert not raw_renderings("wrote 37,518 rows at 20/s on 2026-11-01 14:03 UTC, churn@1")
    assert not raw_renderings("PSI 0.08522, p 0.0001235, diff 2.22e-16, MAE 40.05, 70.7%")
    assert raw_renderings("mean 1.23456") and raw_renderings("total 12,345.67")


def _cli(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out + out.err


def test_every_command_prints_numbers_in_the_one_format(
    duckdb_wh, tmp_path, segment_server, capsys, monkeypatch
):
    url = duckdb_wh.url
    duckdb_wh.close()
    models = str(tmp_path / "models")
    monkeypatch.setenv("SQLTRAITS_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("SEGMENT_WRITE_KEY", WRITE_KEY)
    monkeypatch.setenv("SEGMENT_ENDPOINT", segment_server.url)
    monkeypatch.setenv("SQLTRAITS_MAX_REQUESTS_PER_SECOND", "20")
    monkeypatch.setenv("SQLTRAITS_MAX_EVENTS_PER_SECOND", "0")
    trait_set = str(ROOT / "traitsets" / "churn.toml")
    db = ("--db", url)
    seen: dict[str, str] = {}

    def run(name: str, *args: str, codes: tuple[int, ...] = (0,)) -> str:
        code, out = _cli(capsys, *args)
        assert code in codes, (name, code, out)
        assert "Traceback" not in out
        seen[name] = out
        return out

    quiet = ("--quiet", "--models-dir", models)
    run("train churn", "train", *db, "--model", "churn", "--estimator", "logistic", *quiet)
    run("train ltv", "train", *db, "--model", "ltv", "--estimator", "poisson", *quiet)
    btyd = run("train btyd", "train", *db, "--model", "churn", "--estimator", "btyd",
               "--name", "btyd", *quiet)  # fmt: skip
    run("models", "models", "--models-dir", models)
    run("tables", "tables", *db)
    run("mapping", "mapping", *db)
    scored = run("score", "score", *db, "--model", "churn", "--model", "ltv", "--model", "btyd",
                 "--table", "churn_traits", *quiet)  # fmt: skip
    run("validate", "validate", *db, "--trait-set", trait_set)
    dry = run("dry run", "sync", *db, "--trait-set", trait_set, "--dry-run")
    run("sync", "sync", *db, "--trait-set", trait_set, "--max-requests-per-second", "0")
    history = run("history", "history", *db)
    run("failed", "history", *db, "--failed")
    run("run", "run", trait_set, *db, "--dry-run", "--no-score", "--quiet")
    run("outcomes", "outcomes", *db, "--trait-set", trait_set, "--models", models)
    run_id = history.split()[3]  # after the date, the time and "UTC"
    run("rollback", "rollback", *db, "--trait-set", trait_set, "--run-id", run_id, "--dry-run")

    # the figures are there, in the one format
    assert f"wrote {SAMPLE_CUSTOMERS:,} rows to churn_traits" in scored
    assert "parameters: bgnbd: r " in btyd and '{"' not in btyd
    assert "at 20 requests/s, no events limit" in dry
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d UTC  ", history, re.M), history
    assert f"rows {SAMPLE_CUSTOMERS:,}" in history
    assert "PR AUC" in seen["train churn"] and "churn rate" in seen["train churn"]
    problems = {name: raw_renderings(out) for name, out in seen.items()}
    assert not {k: v for k, v in problems.items() if v}, "\n\n".join(seen.values())
