"""Trait-set test data: the shipped trait sets, an output table's shape, scoring runs."""

from __future__ import annotations

import datetime as dt

import ibis
import numpy as np
import pyarrow as pa

from sqltraits_kit.traits.output import write_output
from sqltraits_kit.traits.traitset import TraitSet
from tests.support import ROOT

CHURN = ROOT / "traitsets" / "churn.toml"
LTV = ROOT / "traitsets" / "ltv.toml"
N = 400


def churn_traits_table(n: int = 200, *, seed: int = 0, bad_rows: bool = False) -> pa.Table:
    """The output production table's shape (what `sqltraits score` writes), with real NaN."""
    rng = np.random.default_rng(seed)
    churn = rng.beta(2, 3, n)
    ltv = rng.gamma(2, 80, n)
    if bad_rows:
        churn[0], churn[1] = np.nan, 0.7  # NaN, and a value exactly on a tier threshold
        ltv[2] = np.nan
    churn_arr = pa.array(churn, mask=np.arange(n) == 3 if bad_rows else None)
    return pa.table(
        {
            "user_id": [f"u{i:05d}" for i in range(n)],
            "churn_probability_90d": churn_arr,
            "predicted_ltv_90d": ltv,
            "p_alive": rng.beta(5, 2, n),
            "expected_purchases_90d": rng.gamma(1.5, 1.2, n),
            "model_name": ["churn"] * n,
            "model_version": ["3"] * n,
            "scored_at": pa.array(
                [dt.datetime(2025, 1, 1, tzinfo=dt.UTC)] * n, pa.timestamp("us", tz="UTC")
            ),
            "run_id": ["r1"] * n,
        }
    )


def run_rows(
    n: int = N, *, seed: int, run_id: str, day: int, shift: float = 0.0, offset: int = 0
) -> pa.Table:
    """One scoring run in the output table's shape; ``offset`` moves the ids (enter/leave)."""
    t = churn_traits_table(n, seed=seed)
    churn = np.clip(t.column("churn_probability_90d").to_numpy() + shift, 0.0, 1.0)
    when = dt.datetime(2025, 1, day, tzinfo=dt.UTC)
    t = t.set_column(0, "user_id", pa.array([f"u{i + offset:05d}" for i in range(n)]))
    t = t.set_column(1, "churn_probability_90d", pa.array(churn))
    t = t.set_column(7, "scored_at", pa.array([when] * n, pa.timestamp("us", tz="UTC")))
    return t.set_column(8, "run_id", pa.array([run_id] * n))


def write_run(wh, name: str, rows: pa.Table) -> None:
    run_id = rows.column("run_id")[0].as_py()
    write_output(wh, ibis.memtable(rows), table=name, id_column="user_id", run_id=run_id)


def churn_set(name: str) -> TraitSet:
    """The shipped churn trait set, reading the test's own table (PostgreSQL is shared)."""
    return TraitSet.load(CHURN).with_(name=name, table=name)


def rounded(values) -> np.ndarray:
    return np.round(np.asarray(values, dtype=float) * 1000) / 1000


def tier(p: float) -> str:
    return "high" if p >= 0.7 else "medium" if p >= 0.3 else "low"


def psi_of_values(wh, name: str, current, baseline) -> float:
    """The PSI of two plain arrays through the library's own ``population_stability`` (itself
    anchored to hand-worked numbers in test_psi_worked.py), in ``wh`` (tables ``name``_pc and
    ``name``_pb): for tests whose point is *which rows* the gate or the Preview compares, not
    how PSI is computed (no second implementation of PSI to share a mistake with)."""
    from sqltraits_kit.traits.drift import population_stability

    def put(suffix: str, values) -> object:
        column = pa.array(np.asarray(values, dtype=float))
        return wh.con.create_table(f"{name}_{suffix}", obj=pa.table({"x": column}))

    return population_stability(put("pc", current), put("pb", baseline), column="x").psi
