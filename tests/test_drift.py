from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from sqltraits_kit.errors import DataError, UnknownTableError
from sqltraits_kit.traits import charts as trait_charts
from sqltraits_kit.traits.drift import (
    ABSENT_LABEL,
    EPSILON,
    NULL_LABEL,
    compare,
    membership,
    population_stability,
    split_runs,
    top_movers,
    transition_matrix,
)


def put(wh, name, frame_or_table):
    return wh.con.create_table(name, obj=frame_or_table)


def test_psi_matches_a_hand_computation(wh, unique_name):
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, 5_000)
    cur = rng.normal(0.3, 1.2, 4_000)
    b = put(wh, unique_name + "_b", pa.table({"x": base}))
    c = put(wh, unique_name + "_c", pa.table({"x": cur}))
    got = population_stability(c, b, column="x")
    assert got.baseline_rows == 5_000 and got.current_rows == 4_000
    assert len(got.bins) == 10
    assert [bin_.baseline for bin_ in got.bins] == [500] * 10  # deciles of the baseline itself
    cuts = np.quantile(base, np.arange(1, 10) / 10)
    expected = np.bincount(np.searchsorted(cuts, cur, side="right"), minlength=10)
    assert [bin_.current for bin_ in got.bins] == expected.tolist()
    # With the bins checked, PSI is the definition's sum over them (test_psi_worked.py anchors
    # the definition itself to numbers worked by hand): no share is 0 here, so no epsilon.
    shares = [(bin_.current / 4_000, bin_.baseline / 5_000) for bin_ in got.bins]
    assert got.psi == pytest.approx(sum((c - b) * math.log(c / b) for c, b in shares), abs=1e-12)
    assert got.bins[0].label.startswith("< ") and got.bins[-1].label.startswith(">= ")
    assert got.bins[0].lower is None and got.bins[-1].upper is None
    same = population_stability(b, b, column="x")
    assert same.psi == 0.0


def test_psi_with_empty_bins_nulls_and_ties(wh, unique_name):
    base = np.array([0.0] * 50 + list(np.linspace(1, 10, 50)))  # zero-inflated: tied cuts
    cur = np.array([np.nan] * 10 + [20.0] * 90)  # nulls, and everything above the top cut
    b = put(wh, unique_name + "_b", pa.table({"x": pa.array(base)}))
    cur_arr = pa.array(np.where(np.isnan(cur), 0, cur), mask=np.isnan(cur))  # real nulls
    c = put(wh, unique_name + "_c", pa.table({"x": cur_arr}))
    got = population_stability(c, b, column="x")
    assert got.bins[-1].label == NULL_LABEL and got.bins[-1].current == 10
    cuts = np.unique(np.quantile(base, np.arange(1, 10) / 10))
    assert len(cuts) == 6  # 9 deciles, 4 of them tied at 0
    assert len(got.bins) == len(cuts) + 2  # value bins + (null)
    assert sum(b_.current == 0 for b_ in got.bins) == len(cuts)  # epsilon kept these finite
    # Worked by hand. Cuts 0, 0.5 (the median falls between the last 0 and the first 1), then
    # the 60..90% deciles of 1..10; bins: < 0, [0, 0.5), four of 10 values each, >= q90, null.
    #   baseline shares: 0 (-> eps), 0.5, 0.1 x 4, 0.1, 0 (-> eps)
    #   current shares:  0 (-> eps), 0 (-> eps), 0 x 4 (-> eps), 0.9, 0.1
    assert [b_.baseline for b_ in got.bins] == [0, 50, 10, 10, 10, 10, 10, 0]
    assert [b_.current for b_ in got.bins] == [0, 0, 0, 0, 0, 0, 90, 10]
    eps = EPSILON
    worked = (
        (eps - 0.5) * math.log(eps / 0.5)  # [0, 0.5): 50 zeros, none now
        + 4 * (eps - 0.1) * math.log(eps / 0.1)  # the four middle deciles, emptied
        + (0.9 - 0.1) * math.log(0.9 / 0.1)  # the top bin: 10 then, 90 now
        + (0.1 - eps) * math.log(0.1 / eps)  # the null bin: none then, 10 now
    )
    assert got.psi == pytest.approx(worked, abs=1e-12)
    assert got.psi == pytest.approx(9.46595, abs=1e-5)


def test_psi_counts_nan_as_null(wh, unique_name):
    base = np.arange(100, dtype=float)
    cur = base.copy()
    cur[:5] = np.nan
    b = put(wh, unique_name + "_b", pa.table({"x": base}))
    c = put(wh, unique_name + "_c", pa.table({"x": pa.array(cur)}))
    got = population_stability(c, b, column="x")
    assert got.bins[-1].label == NULL_LABEL and got.bins[-1].current == 5
    # Worked by hand: deciles of 0..99 put 10 values in each bin; the 5 NaN leave the first
    # bin (0..9) with 5 and go to the null bin (none in the baseline: floored at epsilon).
    #   PSI = (0.05 - 0.1) ln(0.05 / 0.1) + (0.05 - eps) ln(0.05 / eps)
    assert [b_.current for b_ in got.bins] == [5] + [10] * 9 + [5]
    worked = -0.05 * math.log(0.5) + (0.05 - EPSILON) * math.log(0.05 / EPSILON)
    assert got.psi == pytest.approx(worked, abs=1e-12)
    assert got.psi == pytest.approx(0.34477, abs=1e-5)


def test_psi_refuses_text_and_unknown_columns(wh, unique_name):
    t = put(wh, unique_name, pa.table({"x": ["a", "b"], "y": [1.0, 2.0]}))
    with pytest.raises(DataError, match="numeric trait; 'x' is string"):
        population_stability(t, t, column="x")
    with pytest.raises(UnknownTableError, match="'z' is not in the current table"):
        population_stability(t, t, column="z")


@pytest.fixture
def tiers(wh, unique_name):
    baseline = pd.DataFrame(
        {
            "user_id": ["a", "b", "c", "d", "e", "f", "g"],
            "tier": ["low", "low", "high", "medium", None, "high", "low"],
            "score": [0.1, 0.2, 0.9, 0.5, 0.4, 0.8, 0.15],
        }
    )
    current = pd.DataFrame(
        {
            "user_id": ["a", "b", "c", "d", "e", "h", "i"],
            "tier": ["low", "high", "medium", "medium", "low", "vip", None],
            "score": [0.12, 0.95, 0.6, 0.5, 0.2, 1.0, None],
        }
    )
    b = put(wh, unique_name + "_b", baseline)
    c = put(wh, unique_name + "_c", current)
    return c, b, current, baseline


def test_transition_matrix_matches_pandas_crosstab(tiers):
    c, b, current, baseline = tiers
    got = transition_matrix(c, b, id_column="user_id", column="tier")
    merged = baseline.merge(
        current, on="user_id", how="outer", suffixes=("_b", "_c"), indicator=True
    )
    frm = merged["tier_b"].fillna(NULL_LABEL).where(merged["_merge"] != "right_only", ABSENT_LABEL)
    to = merged["tier_c"].fillna(NULL_LABEL).where(merged["_merge"] != "left_only", ABSENT_LABEL)
    expected = pd.crosstab(frm.rename("from"), to.rename("to"))
    frame = got.to_frame()
    assert frame.loc[expected.index, expected.columns].equals(expected.astype(frame.dtypes.iloc[0]))
    assert frame.to_numpy().sum() == len(merged)
    assert got.count("low", "high") == 1 and got.count("high", ABSENT_LABEL) == 1
    assert got.changed == 3  # b low->high, c high->medium, e (null)->low
    assert list(frame.index[-2:]) == [NULL_LABEL, ABSENT_LABEL]


def test_transition_matrix_label_order(tiers):
    c, b, _, _ = tiers
    got = transition_matrix(
        c, b, id_column="user_id", column="tier", labels=["low", "medium", "high", "platinum"]
    )
    assert got.labels_to == ("low", "medium", "high", "platinum", "vip", NULL_LABEL, ABSENT_LABEL)
    assert got.count("low", "platinum") == 0
    json.dumps(got.to_dict())


def test_membership_counts(tiers):
    c, b, current, baseline = tiers
    got = membership(c, b, id_column="user_id")
    now, before = set(current["user_id"]), set(baseline["user_id"])
    assert (got.entering, got.leaving, got.staying) == (
        len(now - before),
        len(before - now),
        len(now & before),
    )


def test_top_movers_match_pandas(wh, unique_name):
    rng = np.random.default_rng(4)
    n = 500
    ids = [f"u{i:03d}" for i in range(n)]
    base = pd.DataFrame({"user_id": ids, "score": rng.random(n)})
    cur = base.sample(frac=0.9, random_state=1).copy()
    cur["score"] = cur["score"] + rng.normal(0, 0.2, len(cur))
    cur.loc[cur.index[0], "score"] = np.nan
    b = put(wh, unique_name + "_b", base)
    c = put(wh, unique_name + "_c", pa.Table.from_pandas(cur, preserve_index=False))
    got = top_movers(c, b, id_column="user_id", column="score", n=15)
    merged = cur.merge(base, on="user_id", suffixes=("_c", "_b")).dropna()
    merged["change"] = merged["score_c"] - merged["score_b"]
    merged["abs"] = merged["change"].abs()
    expected = merged.sort_values(["abs", "user_id"], ascending=[False, True]).head(15)
    assert list(got.columns) == ["user_id", "baseline", "current", "change"]
    assert list(got["user_id"]) == list(expected["user_id"])
    assert np.allclose(got["change"], expected["change"])
    assert np.allclose(got["baseline"], expected["score_b"])


def test_compare_report(tiers):
    c, b, _, _ = tiers
    report = compare(
        c,
        b,
        id_column="user_id",
        movers="score",
        n_movers=3,
        threshold=0.1,
        labels={"tier": ["low", "medium", "high"]},
    )
    assert set(report.psi) == {"score"} and set(report.transitions) == {"tier"}
    assert report.membership.to_dict() == {"entering": 2, "leaving": 2, "staying": 5}
    assert report.max_psi == report.psi["score"].psi > 0.1
    assert report.over_threshold() == ["score"]
    assert report.over_threshold(100.0) == []
    assert list(report.movers["user_id"]) == ["b", "c", "e"]
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["over_threshold"] == ["score"] and data["movers"][0]["user_id"] == "b"
    # the figures the Preview page shows
    assert list(trait_charts.psi_figure(report).data[0].x) == ["score"]
    bins = trait_charts.psi_bins_figure(report.psi["score"])
    assert len(bins.data) == 2 and len(bins.data[0].x) == len(report.psi["score"].bins)
    heat = trait_charts.transition_figure(report.transitions["tier"])
    assert list(heat.data[0].y) == list(report.transitions["tier"].labels_from)


def test_compare_with_explicit_traits_and_no_overlap(wh, unique_name):
    b = put(wh, unique_name + "_b", pd.DataFrame({"user_id": ["a"], "d": [3]}))
    c = put(wh, unique_name + "_c", pd.DataFrame({"user_id": ["z"], "d": [7]}))
    report = compare(c, b, id_column="user_id", numeric=[], categorical=["d"])
    assert report.psi == {} and report.max_psi is None and report.over_threshold() == []
    assert report.transitions["d"].count("3", ABSENT_LABEL) == 1
    assert report.transitions["d"].count(ABSENT_LABEL, "7") == 1


def test_split_runs(wh, unique_name):
    at = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    history = pd.DataFrame(
        {
            "user_id": ["a", "b", "a", "b", "a"],
            "score": [0.1, 0.2, 0.3, 0.4, 0.5],
            "run_id": ["r1", "r1", "r2", "r2", "r3"],
            "scored_at": [at + dt.timedelta(days=d) for d in (0, 0, 1, 1, 2)],
        }
    )
    h = put(wh, unique_name, history)
    current, previous = split_runs(h)
    assert current.to_pandas()["score"].tolist() == [0.5]
    assert sorted(previous.to_pandas()["score"]) == [0.3, 0.4]
    current, previous = split_runs(h, run_id="r2")
    assert sorted(previous.to_pandas()["run_id"].unique()) == ["r1"]
    _, none = split_runs(h, run_id="r1")
    assert none is None
    with pytest.raises(DataError, match="'r9' is not in the history"):
        split_runs(h, run_id="r9")
    with pytest.raises(DataError, match="no runs"):
        split_runs(h.filter(h.run_id == "nope"))


def test_compare_trait_set_uses_tiers_and_threshold(wh, unique_name):
    from sqltraits_kit.traits.drift import compare_trait_set
    from sqltraits_kit.traits.traitset import TraitSet, resolve
    from tests.support.traits import LTV, churn_traits_table

    before = churn_traits_table(400, seed=1).to_pandas()
    after = before.copy()
    after["predicted_ltv_90d"] *= 1.5  # everyone looks more valuable: ranks, so deciles, stay put
    put(wh, unique_name + "_b", before)
    put(wh, unique_name + "_c", after)
    ts = TraitSet.load(LTV)
    baseline = resolve(wh, ts.with_(table=unique_name + "_b"))
    current = resolve(wh, ts.with_(table=unique_name + "_c"))
    report = compare_trait_set(current, baseline, ts, movers="predicted_ltv_90d", n_movers=5)
    assert set(report.psi) == {"predicted_ltv_90d", "expected_purchases_90d"}
    assert set(report.transitions) == {"ltv_decile", "ltv_tier"}
    assert report.transitions["ltv_tier"].labels_from == ("low", "medium", "high")
    assert report.transitions["ltv_decile"].labels_to == tuple(str(i) for i in range(1, 11))
    assert report.threshold == ts.drift_threshold
    assert report.over_threshold() == ["predicted_ltv_90d"]
    tiers = report.transitions["ltv_tier"]
    moved_up = tiers.count("low", "medium") + tiers.count("medium", "high")
    assert moved_up > 0 and tiers.count("high", "low") == tiers.count("medium", "low") == 0
    assert report.transitions["ltv_decile"].changed == 0
    assert report.psi["expected_purchases_90d"].psi == 0.0
    assert len(report.movers) == 5
