from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from sqltraits_kit.errors import UnknownTableError
from sqltraits_kit.traits import charts as trait_charts
from sqltraits_kit.traits.distributions import (
    NULL_LABEL,
    OTHER_LABEL,
    QUANTILES,
    summarize,
    summarize_trait,
    summary_frame,
    tier_sizes,
)
from sqltraits_kit.traits.traitset import TraitSet, resolve
from tests.support.traits import CHURN, churn_traits_table


@pytest.fixture
def mixed(wh, unique_name):
    rng = np.random.default_rng(11)
    n = 2_000
    score = rng.normal(50, 10, n)
    score[:3] = [np.nan, np.inf, -np.inf]
    score_mask = np.zeros(n, bool)
    score_mask[3:8] = True  # 5 nulls
    tiers = rng.choice(["low", "medium", "high", "vip"], n, p=[0.5, 0.3, 0.15, 0.05])
    table = pa.table(
        {
            "user_id": [f"u{i}" for i in range(n)],
            "score": pa.array(score, mask=score_mask),
            "decile": rng.integers(1, 11, n),
            "tier": pa.array(tiers, mask=np.arange(n) % 100 == 0),
            "flag": rng.random(n) > 0.8,
            "seen_at": pa.array(
                [
                    dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=int(d))
                    for d in range(n)
                ],
                pa.timestamp("us", "UTC"),
            ),
            "model_name": ["m"] * n,
        }
    )
    return wh.con.create_table(unique_name, obj=table), table.to_pandas()


def test_numeric_histogram_and_quantiles_match_numpy(mixed):
    table, frame = mixed
    s = summarize(table, id_column="user_id")["score"]
    values = frame["score"].to_numpy()
    finite = values[np.isfinite(values)]
    assert s.kind == "numeric" and s.rows == 2_000
    assert s.nulls == 5 and s.non_finite == 3
    assert s.null_rate == pytest.approx(5 / 2_000)
    assert s.min == pytest.approx(finite.min()) and s.max == pytest.approx(finite.max())
    assert s.mean == pytest.approx(finite.mean())
    expected_q = np.quantile(finite, list(QUANTILES.values()))  # linear, like quantile_cont
    assert list(s.quantiles) == ["p1", "p5", "p25", "p50", "p75", "p95", "p99"]
    assert np.allclose(list(s.quantiles.values()), expected_q, rtol=1e-12)
    counts, edges = np.histogram(finite, bins=30, range=(finite.min(), finite.max()))
    assert np.allclose(s.histogram.edges, edges)
    assert list(s.histogram.counts) == counts.tolist()
    assert s.histogram.total == len(finite)


def test_small_integer_ranges_get_one_bin_per_value(mixed):
    table, frame = mixed
    s = summarize_trait(table, "decile")
    assert len(s.histogram.counts) == 10
    assert s.histogram.edges[0] == 0.5 and s.histogram.edges[-1] == 10.5
    assert list(s.histogram.counts) == frame["decile"].value_counts().sort_index().tolist()


def test_categorical_top_values_and_other(mixed):
    table, frame = mixed
    s = summarize(table, columns=["tier"], top=2)["tier"]
    counts = frame["tier"].value_counts()
    assert s.kind == "categorical" and s.distinct == 4
    assert s.nulls == 20
    assert s.histogram.labels == ("low", "medium", OTHER_LABEL)
    assert s.histogram.counts == (
        counts["low"],
        counts["medium"],
        counts["high"] + counts["vip"],
    )


def test_boolean_and_timestamp_traits(mixed):
    table, frame = mixed
    out = summarize(table, columns=["flag", "seen_at"])
    flag = out["flag"]
    assert flag.kind == "boolean"
    got = dict(zip(flag.histogram.labels, flag.histogram.counts, strict=True))
    assert got == {"true": int(frame["flag"].sum()), "false": int((~frame["flag"]).sum())}
    seen = out["seen_at"]
    assert seen.kind == "timestamp" and seen.histogram is None
    assert seen.min.startswith("2025-01-01") and seen.max.startswith("2030-06-")


def test_default_columns_skip_identifier_and_metadata(mixed):
    table, _ = mixed
    assert list(summarize(table, id_column="user_id")) == [
        "score",
        "decile",
        "tier",
        "flag",
        "seen_at",
    ]
    with pytest.raises(UnknownTableError, match="'nope'"):
        summarize(table, columns=["nope"])


def test_constant_and_all_null_columns(wh, unique_name):
    table = wh.con.create_table(
        unique_name,
        obj=pa.table(
            {"same": [2.5, 2.5, 2.5], "empty": pa.array([None, None, None], pa.float64())}
        ),
    )
    out = summarize(table)
    assert out["same"].histogram.counts == (3,) and out["same"].histogram.edges == (2.5, 2.5)
    assert out["empty"].histogram is None and out["empty"].null_rate == 1.0
    assert out["empty"].quantiles["p50"] is None


def test_tier_sizes_follow_the_labels(wh, unique_name):
    ts = TraitSet.load(CHURN)
    wh.con.create_table(unique_name, obj=churn_traits_table(500, bad_rows=True))
    table = resolve(wh, ts.with_(table=unique_name))
    labels = [*ts.derived[0].labels, "unused"]
    sizes = tier_sizes(table, "churn_risk_tier", labels=labels)
    assert list(sizes["tier"]) == ["low", "medium", "high", "unused", NULL_LABEL]
    expected = table.to_pandas()["churn_risk_tier"].value_counts()
    assert sizes.set_index("tier")["count"].to_dict() == {
        "low": expected["low"],
        "medium": expected["medium"],
        "high": expected["high"],
        "unused": 0,
        NULL_LABEL: 2,  # the NaN and the null churn_probability
    }
    assert sizes["share"].sum() == pytest.approx(1.0)
    numeric = tier_sizes(table.mutate(d=table.churn_probability * 20), "d")
    assert list(numeric["tier"][:3]) == sorted(numeric["tier"][:3], key=float)


def test_summary_frame_and_json(mixed):
    table, _ = mixed
    summaries = summarize(table, id_column="user_id")
    frame = summary_frame(summaries)
    assert list(frame["trait"]) == list(summaries)
    assert {"null_rate", "p1", "p50", "p99", "min", "max", "mean"} <= set(frame.columns)
    row = frame.set_index("trait").loc["score"]
    assert row["p50"] == summaries["score"].quantiles["p50"]
    for s in summaries.values():
        json.dumps(s.to_dict(), allow_nan=False)


def test_figures_carry_bins_only(duckdb_wh, unique_name):
    n = 200_000
    rng = np.random.default_rng(3)
    table = duckdb_wh.con.create_table(
        unique_name,
        obj=pa.table(
            {
                "user_id": np.char.add("u", np.arange(n).astype(str)),
                "churn_probability": rng.beta(2, 3, n),
                "tier": rng.choice(["low", "medium", "high"], n),
            }
        ),
    )
    summaries = summarize(table, id_column="user_id")
    fig = trait_charts.histogram_figure(summaries["churn_probability"])
    payload = fig.to_json()
    assert len(payload) < 20_000, len(payload)  # 200k raw points would be megabytes
    assert len(fig.data[0].x) == 30 and sum(fig.data[0].y) == n
    cat = trait_charts.histogram_figure(summaries["tier"])
    assert list(cat.data[0].x) == list(summaries["tier"].histogram.labels)
    sizes = tier_sizes(table, "tier", labels=["low", "medium", "high"])
    tiers = trait_charts.tier_figure(sizes)
    assert list(tiers.data[0].x) == ["low", "medium", "high"]
    nulls = trait_charts.null_rate_figure(summaries)
    assert list(nulls.data[0].y) == ["churn_probability", "tier"]
    assert all(len(f.to_json()) < 20_000 for f in (cat, tiers, nulls))


def test_histogram_figure_without_values(wh, unique_name):
    table = wh.con.create_table(
        unique_name, obj=pd.DataFrame({"x": pd.Series([None, None], dtype="float64")})
    )
    fig = trait_charts.histogram_figure(summarize_trait(table, "x"))
    assert fig.layout.annotations[0].text == "no values to plot"
