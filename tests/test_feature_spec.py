"""Your own features: a spec's aggregates and attributes have the values they say, on DuckDB and
PostgreSQL; none of them sees an event at or after the cutoff (the leakage test, for every spec
feature); a model trained on a spec keeps it on its card and scores with it."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from sqltraits_kit.errors import ConfigError, UnknownTableError
from sqltraits_kit.modelling.feature_spec import FeatureSpec
from sqltraits_kit.modelling.features import FEATURE_COLUMNS, TableMapping, build_features

CUTOFF = dt.datetime(2026, 6, 1)
SPEC = {
    "aggregate": [
        {
            "name": "searches_30d",
            "table": "tracks",
            "function": "count",
            "window_days": 30,
            "where": {"event": "Products Searched"},
        },
        {"name": "event_kinds", "table": "tracks", "function": "distinct", "column": "event"},
        {
            "name": "largest_order",
            "table": "order_completed",
            "function": "max",
            "column": "revenue",
        },
        {
            "name": "order_revenue_60d",
            "table": "order_completed",
            "function": "sum",
            "column": "revenue",
            "window_days": 60,
        },
    ],
    "attribute": [{"name": "plan", "column": "plan", "categories": ["pro", "enterprise"]}],
}


def _by_id(expr) -> pd.DataFrame:
    return expr.to_pandas().set_index("profile_id").sort_index()


def test_spec_values_match_pandas(wh):
    got = _by_id(build_features(wh, as_of=CUTOFF, spec=SPEC))
    spec_columns = ["searches_30d", "event_kinds", "largest_order", "order_revenue_60d"]
    assert list(got.columns) == [*FEATURE_COLUMNS, *spec_columns, "plan_pro", "plan_enterprise"]
    tracks = wh.table("tracks").to_pandas()
    orders = wh.table("order_completed").to_pandas()
    users = wh.table("users").to_pandas().set_index("id")
    tracks, orders = tracks[tracks.timestamp < CUTOFF], orders[orders.timestamp < CUTOFF]
    recent = tracks[tracks.timestamp >= CUTOFF - dt.timedelta(days=30)]
    expected = pd.DataFrame(index=got.index)
    expected["searches_30d"] = recent[recent.event == "Products Searched"].groupby("user_id").size()
    expected["event_kinds"] = tracks.groupby("user_id").event.nunique()
    expected["largest_order"] = orders.groupby("user_id").revenue.max()
    last60 = orders[orders.timestamp >= CUTOFF - dt.timedelta(days=60)]
    expected["order_revenue_60d"] = last60.groupby("user_id").revenue.sum()
    plan = users["plan"].reindex(got.index)
    expected["plan_pro"] = (plan == "pro").astype(float)
    expected["plan_enterprise"] = (plan == "enterprise").astype(float)
    expected = expected.fillna(0.0).astype(float)
    pd.testing.assert_frame_equal(got[expected.columns], expected, check_names=False, rtol=1e-9)
    assert expected["searches_30d"].sum() > 0 and expected["plan_pro"].sum() > 0


def test_no_spec_feature_sees_the_future(wh, unique_name):
    """The leakage test for every spec feature: rows at or after the cutoff change nothing,
    and a later cutoff does see them (so the check cannot pass vacuously)."""
    p = unique_name
    for table in ("users", "order_completed", "tracks"):
        wh.con.create_table(f"{p}_{table}", wh.table(table))
    history = pd.DataFrame(
        {
            "user_id": ["u00000001", "u00000001", "u00000002"],
            "seats": [3.0, 5.0, 2.0],
            "changed_at": pd.to_datetime(["2026-01-01", "2026-05-01", "2026-02-01"]),
        }
    )
    wh.con.create_table(f"{p}_seats", history)
    seats_attribute = {"name": "seats", "table": f"{p}_seats", "profile_id": "user_id"}
    seats_attribute |= {"column": "seats", "as_of_column": "changed_at"}
    spec = {
        "aggregate": [
            {**a, "table": f"{p}_{a['table']}", "profile_id": "user_id"} for a in SPEC["aggregate"]
        ],
        "attribute": [seats_attribute],
    }
    mapping = TableMapping(
        profiles_table=f"{p}_users",
        orders_table=f"{p}_order_completed",
        tracks_table=f"{p}_tracks",
        pages_table=None,
    )
    cols = FeatureSpec.from_dict(spec).columns()
    try:
        before = _by_id(build_features(wh, mapping, as_of=CUTOFF, spec=spec))[cols]
        assert before.loc["u00000001", "seats"] == 5.0 and before.loc["u00000002", "seats"] == 2.0
        ids = before.index[:40].tolist()
        future = [CUTOFF, CUTOFF + dt.timedelta(seconds=1), CUTOFF + dt.timedelta(days=2)]
        rows = [(i, ts) for i in ids for ts in future]
        orders = pd.DataFrame(rows, columns=["user_id", "timestamp"]).assign(revenue=5000.0)
        tracks = pd.DataFrame(rows, columns=["user_id", "timestamp"])
        tracks = tracks.assign(event="Products Searched")
        seats = pd.DataFrame(rows, columns=["user_id", "changed_at"]).assign(seats=99.0)
        for table, frame in (
            (f"{p}_order_completed", orders),
            (f"{p}_tracks", tracks),
            (f"{p}_seats", seats),
        ):
            wh.con.insert(table, frame.reindex(columns=wh.table(table).columns))
        after = _by_id(build_features(wh, mapping, as_of=CUTOFF, spec=spec))[cols]
        pd.testing.assert_frame_equal(before, after)
        later = _by_id(build_features(wh, mapping, as_of=CUTOFF + dt.timedelta(days=3), spec=spec))
        assert (later.loc[ids, "searches_30d"] >= 3).all()
        assert (later.loc[ids, "largest_order"] == 5000.0).all()
        assert (later.loc[ids, "seats"] == 99.0).all()
    finally:
        for table in ("users", "order_completed", "tracks", "seats"):
            wh.con.drop_table(f"{p}_{table}", force=True)


def test_a_model_trained_on_a_spec_keeps_it_and_scores_with_it(duckdb_wh, tmp_path):
    from sqltraits_kit.modelling.registry import Registry
    from sqltraits_kit.modelling.training import train_model
    from sqltraits_kit.traits.scoring import score

    registry = Registry(tmp_path / "models")
    spec_file = tmp_path / "features.toml"
    spec_file.write_text(
        'replace = false\n\n[[aggregate]]\nname = "searches_30d"\ntable = "tracks"\n'
        'function = "count"\nwindow_days = 30\nwhere = { event = "Products Searched" }\n\n'
        '[[attribute]]\nname = "plan"\ncolumn = "plan"\ncategories = ["pro", "enterprise"]\n'
    )
    result = train_model(
        duckdb_wh, kind="churn", estimator="logistic", feature_spec=spec_file, registry=registry
    )
    card = result.card
    assert card.feature_spec == FeatureSpec.load(spec_file).to_dict()
    assert card.features[-3:] == ["searches_30d", "plan_pro", "plan_enterprise"]
    assert any("plan has no as_of_column" in n for n in card.notes)
    run = score(duckdb_wh, models="churn", registry=registry, table="spec_scores")
    assert run.models[0].path == "warehouse"  # a logistic model on spec features still translates
    scored = duckdb_wh.table("spec_scores").to_pandas().set_index("user_id")
    X = build_features(duckdb_wh, as_of=run.as_of, spec=card.feature_spec).to_pandas()
    X = X.set_index("profile_id").loc[scored.index]
    expected = result.model.predict_proba(X[card.features])[:, 1]
    np.testing.assert_allclose(scored["churn_probability_90d"], expected, atol=1e-9)


def test_replace_gives_the_models_only_the_spec(sample_file):
    from sqltraits_kit.modelling.training import train_model
    from sqltraits_kit.warehouse import connect

    wh = connect(f"duckdb:///{sample_file}", read_only=True)
    try:
        spec = {**SPEC, "replace": True}
        card = train_model(wh, kind="ltv", estimator="poisson", feature_spec=spec).card
    finally:
        wh.close()
    assert card.features == FeatureSpec.from_dict(spec).columns()
    assert set(card.baselines) == {"zero", "past_rate", "btyd"}  # still judged on the same rows


def test_bad_specs_are_explained(sample_file):
    from sqltraits_kit.warehouse import connect

    with pytest.raises(ConfigError, match="function must be one of"):
        FeatureSpec.from_dict({"aggregate": [{"name": "x", "table": "t", "function": "median"}]})
    with pytest.raises(ConfigError, match="sum needs a column"):
        FeatureSpec.from_dict({"aggregate": [{"name": "x", "table": "t", "function": "sum"}]})
    with pytest.raises(ConfigError, match="named twice"):
        FeatureSpec.from_dict({"aggregate": [{"name": "x", "table": "t"}] * 2})
    with pytest.raises(ConfigError, match="lower_snake_case"):
        FeatureSpec.from_dict({"attribute": [{"name": "Plan", "column": "plan"}]})
    with pytest.raises(ConfigError, match="unknown key"):
        FeatureSpec.from_dict({"aggregates": []})
    wh = connect(f"duckdb:///{sample_file}", read_only=True)
    try:
        clash = {"aggregate": [{"name": "orders_count", "table": "tracks"}]}
        with pytest.raises(ConfigError, match="built-in feature"):
            build_features(wh, as_of=CUTOFF, spec=clash)
        missing = {"aggregate": [{"name": "x", "table": "tracks", "function": "max",
                                  "column": "price"}]}  # fmt: skip
        with pytest.raises(UnknownTableError, match="'price' not found in tracks"):
            build_features(wh, as_of=CUTOFF, spec=missing).execute()
    finally:
        wh.close()
