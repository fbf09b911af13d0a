"""The live metrics, computed in the warehouse, equal training's pandas metrics (ties included)
on DuckDB and PostgreSQL."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from sqltraits_kit.modelling.live_metrics import churn_metrics, ltv_metrics, uplift
from sqltraits_kit.modelling.metrics import (
    classification_metrics,
    decile_table,
    regression_metrics,
)


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(11)
    n = 997
    p = np.round(rng.beta(2, 3, n), 2)  # rounded: many ties, as BTYD scores have
    y = (rng.uniform(size=n) < p).astype(int)
    value = np.round(rng.gamma(2.0, 30.0, n) * (rng.uniform(size=n) < 0.6), 2)
    predicted = np.round(value * rng.uniform(0.5, 1.5, n) + 5, 0)
    tier = np.where(p >= 0.6, "high", np.where(p >= 0.3, "medium", "low"))
    treated = rng.uniform(size=n) < 0.7
    return pa.table({"p": p, "y": y, "value": value, "predicted": predicted, "tier": tier,
                     "treated": treated})  # fmt: skip


def test_churn_metrics_equal_trainings(wh, rows):
    t = wh.con.create_table(f"lm_{wh.backend}", rows, overwrite=True)
    live = churn_metrics(t, score="p", actual="y", by="tier")
    frame = rows.to_pandas()
    want = classification_metrics(frame["y"], frame["p"])
    got = live["all"]
    for metric in ("auc", "brier", "top_decile_lift", "base_rate"):
        assert got[metric] == pytest.approx(want[metric], abs=1e-9), metric
    assert got["rows"] == len(frame) and got["auc_se"] > 0
    for tier, part in frame.groupby("tier"):
        assert live[tier]["auc"] == pytest.approx(
            classification_metrics(part["y"], part["p"])["auc"], abs=1e-9
        )
    assert got["calibration_gap"] == pytest.approx(frame["p"].mean() - frame["y"].mean())
    assert 0 <= got["ece"] < 0.1


def test_ltv_metrics_equal_trainings(wh, rows):
    t = wh.con.create_table(f"lm2_{wh.backend}", rows, overwrite=True)
    got = ltv_metrics(t, score="predicted", actual="value")["all"]
    frame = rows.to_pandas()
    want = regression_metrics(frame["value"], frame["predicted"])
    for metric in ("mae", "total_pct_error", "mean_actual", "mean_predicted"):
        assert got[metric] == pytest.approx(want[metric], rel=1e-9), metric
    deciles = decile_table(frame["value"], frame["predicted"])
    # Decile edges: floor(10 * position / n) here, numpy's array_split there; the top decile's
    # mean (tie-averaged) agrees within what moving one boundary row can change.
    assert got["deciles"][0]["mean_actual"] == pytest.approx(deciles["mean_actual"][0], rel=0.05)
    assert sum(d["rows"] for d in got["deciles"]) == len(frame)


def test_uplift_is_the_difference_of_the_arms_with_a_wald_interval(wh, rows):
    result = uplift(
        wh.con.create_table(f"lm3_{wh.backend}", rows, overwrite=True),
        treated="treated",
        churned="y",
        revenue="value",
        by="tier",
    )
    frame = rows.to_pandas()
    tr, co = frame[frame["treated"]], frame[~frame["treated"]]
    overall = result["all"]
    assert overall["churn_reduction"] == pytest.approx(co["y"].mean() - tr["y"].mean())
    se = math.sqrt(
        tr["y"].mean() * (1 - tr["y"].mean()) / len(tr)
        + co["y"].mean() * (1 - co["y"].mean()) / len(co)
    )
    lo, hi = overall["churn_reduction_ci"]
    assert (hi - lo) / 2 == pytest.approx(1.959963984540054 * se)
    rse = math.sqrt(tr["value"].var() / len(tr) + co["value"].var() / len(co))
    lo, hi = overall["revenue_uplift_ci"]
    assert (hi - lo) / 2 == pytest.approx(1.959963984540054 * rse)
    assert set(result) == {"all", "high", "medium", "low"}
