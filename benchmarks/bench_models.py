"""Model quality out of time: every candidate, the champion and the naive baselines, on the
kit's sample and on a real purchase log of another shape (CDNOW).

    python -m benchmarks.bench_models [--customers 20000] [--seed 7] [--horizons 90,60,120,180]
                                      [--results benchmarks/RESULTS.md | --no-results]

Not a timing benchmark: it writes the ``models`` section of RESULTS.md with the figures
``sqltraits train`` (no ``--estimator``) gives on each dataset. The sample runs at the first
horizon only; CDNOW at every horizon, because its single cohort makes the result depend on the
window more than the sample's does.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import _harness as h

CDNOW = h.ROOT / "tests" / "data" / "cdnow_sample_transactions.txt"
HEADLINE = {"churn": ("auc", "brier"), "ltv": ("mae", "total_pct_error", "gini")}


def _cdnow(path: Path) -> Any:
    import duckdb
    import pandas as pd

    from sqltraits_kit.modelling.features import TableMapping

    raw = pd.read_csv(
        CDNOW,
        sep=r"\s+",
        header=None,
        names=["master_id", "customer_no", "date", "cds", "dollars"],
        dtype={"date": str},
    )
    raw["ordered_at"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    orders = raw[["customer_no", "ordered_at", "cds", "dollars"]].copy()
    customers = orders.groupby("customer_no", as_index=False).agg(
        first_order_at=("ordered_at", "min")
    )
    con = duckdb.connect(str(path))
    con.register("o", orders)
    con.register("c", customers)
    con.execute("CREATE TABLE shop_orders AS SELECT * FROM o")
    con.execute("CREATE TABLE crm_customers AS SELECT * FROM c")
    con.close()
    return TableMapping(
        profiles_table="crm_customers",
        profile_id="customer_no",
        profile_created_at="first_order_at",
        orders_table="shop_orders",
        order_profile_id="customer_no",
        order_timestamp="ordered_at",
        order_revenue="dollars",
        tracks_table=None,
        pages_table=None,
    )


def _f(value: Any, metric: str = "") -> str:
    if value is None:
        return "—"
    if abs(value) < 1e-9:
        value = 0.0  # a constant prediction's Gini is 0 up to rounding
    if metric == "total_pct_error":
        return f"{value:+.1f}%"
    return f"{value:.4g}"


def _section(dataset: str, kind: str, horizon: int, card: Any, seconds: float) -> list[str]:
    metrics = HEADLINE[kind]
    sel = card.selection or {}
    lines = [
        f"**{dataset}, {kind}, {horizon}-day horizon** — champion **{card.estimator}** "
        f"({sel.get('reason', 'no validation window')}); trained on "
        f"{', '.join(card.training_cutoffs or [])}, validated at "
        f"{sel.get('validation_cutoff', '—')}, tested at {card.test_cutoff} on "
        f"{card.test_rows:,} profiles; {seconds:.0f} s",
        "",
        "| | "
        + " | ".join(f"validation {m}" for m in metrics[:1])
        + " | "
        + " | ".join(f"test {m}" for m in metrics)
        + " |",
        "|---|" + "---|" * (1 + len(metrics)),
    ]
    for name, figures in sel.get("candidates", {}).items():
        star = " (champion)" if name == card.estimator else ""
        val = figures.get("validation", {}).get(metrics[0])
        test = [_f(figures.get("test", {}).get(m), m) for m in metrics]
        lines.append(f"| {name}{star} | {_f(val, metrics[0])} | " + " | ".join(test) + " |")
    for name, figures in (card.baselines or {}).items():
        val = (sel.get("baselines_validation", {}).get(name) or {}).get(metrics[0])
        test = [_f(figures.get(m), m) for m in metrics]
        lines.append(f"| baseline: {name} | {_f(val, metrics[0])} | " + " | ".join(test) + " |")
    if any(f"reference_{m}" in card.metrics for m in metrics):
        test = [_f(card.metrics.get(f"reference_{m}"), m) for m in metrics]
        lines.append("| reference (true parameters) | — | " + " | ".join(test) + " |")
    verdict = []
    for row in card.comparison or []:
        if row["metric"] in metrics:
            word = "beats" if row["beats"] else "does NOT beat"
            verdict.append(
                f"{row['metric']}: {word} the best baseline ({row['best_baseline']}, "
                f"{_f(row['baseline'], row['metric'])})"
            )
    lines += ["", "Champion vs best baseline: " + "; ".join(verdict) + ".", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=h.QUICK_CUSTOMERS)
    p.add_argument("--seed", type=int, default=h.DEFAULT_SEED)
    p.add_argument("--horizons", default="90,60,120,180")
    p.add_argument("--results", default=str(h.RESULTS))
    p.add_argument("--no-results", action="store_true")
    args = p.parse_args(argv)
    horizons = [int(x) for x in args.horizons.split(",")]

    from sqltraits_kit.modelling.features import TableMapping
    from sqltraits_kit.modelling.training import train_model
    from sqltraits_kit.warehouse import connect

    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        crm = Path(tmp) / "cdnow.duckdb"
        runs = [
            ("sample", h.ensure_sample(args.customers, args.seed), TableMapping(), horizons[:1])
        ]
        runs.append(("CDNOW", crm, _cdnow(crm), horizons))
        for dataset, path, mapping, hs in runs:
            wh = connect(f"duckdb:///{path}", read_only=True)
            try:
                for horizon in hs:
                    for kind in ("churn", "ltv"):
                        started = time.perf_counter()
                        card = train_model(
                            wh, kind=kind, mapping=mapping, horizon_days=horizon
                        ).card
                        seconds = time.perf_counter() - started
                        block = _section(dataset, kind, horizon, card, seconds)
                        print("\n".join(block), flush=True)
                        lines += block
            finally:
                wh.close()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = [
        "## Model quality: candidates, champion and baselines out of time",
        "",
        f"Measured {now} · `python -m benchmarks.bench_models` · sample: {args.customers:,} "
        f"customers (seed {args.seed}); CDNOW: the 2,357-customer sample of tests/data as a CRM "
        "log (orders only, integer ids, one cohort of Jan–Mar 1997) · `train_model` defaults: "
        "`estimator='auto'`, 3 stacked snapshots, refit after testing · commit "
        f"{h._git_rev()}",
        "",
    ]
    text = "\n".join(header + lines)
    if not args.no_results:
        h.write_section(Path(args.results), "models", text + "\n")
        print(f"\nwrote the 'models' section of {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
