"""Timings that used to be wall-time assertions in unit tests (a shared machine is not a test).

    python -m benchmarks.bench_unit_timings

- BG/NBD fit on 1,000,000 simulated customers (was ``< 20 s`` in tests/test_btyd.py; about 1 s)
- ``validate`` of a 1,000,000-row output table on DuckDB (was ``< 10 s`` in tests/test_contract.py)

Each prints the seconds and its former limit; the tests keep the correctness assertions.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa


def fit_btyd(n: int = 1_000_000) -> float:
    from sqltraits_kit.modelling.btyd import BetaGeo, simulate_bgnbd

    sim = simulate_bgnbd(n, r=0.25, alpha=4.0, a=0.8, b=2.5, T=52.0, seed=1)
    recency_in_days = np.round(sim.recency * 7) / 7
    start = time.perf_counter()
    BetaGeo().fit(sim.frequency, recency_in_days, sim.T)
    return time.perf_counter() - start


def validate_table(n: int = 1_000_000) -> float:
    from sqltraits_kit.traits.contract import validate
    from sqltraits_kit.warehouse import connect

    rng = np.random.default_rng(5)
    table = pa.table(
        {
            "user_id": np.char.add("u", np.arange(n).astype(str)),
            "churn_probability": rng.random(n),
            "predicted_ltv": rng.gamma(2, 80, n),
            "churn_risk_tier": rng.choice(["low", "medium", "high"], n),
            "orders": rng.integers(0, 50, n),
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        wh = connect(f"duckdb:///{Path(tmp) / 'wh.duckdb'}")
        try:
            t = wh.con.create_table("scores", obj=table)
            start = time.perf_counter()
            validate(t)
            return time.perf_counter() - start
        finally:
            wh.close()


def main() -> int:
    for name, fn, limit in (("BG/NBD fit, 1M", fit_btyd, 20), ("validate, 1M", validate_table, 10)):
        seconds = fn()
        print(f"{name}: {seconds:.2f} s (former test limit {limit} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
