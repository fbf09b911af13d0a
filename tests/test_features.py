"""Point-in-time features and labels: exact values on hand-made tables, no leakage, same results
on DuckDB and PostgreSQL, one warehouse scan per source table."""

from __future__ import annotations

import datetime as dt
import math

import ibis
import pandas as pd
import pytest

from sqltraits_kit.errors import ConfigError, UnknownTableError
from sqltraits_kit.modelling.features import (
    FEATURE_COLUMNS,
    TableMapping,
    build_features,
    build_labels,
    data_end,
    feature_columns,
    profile_count,
)

T = pd.Timestamp
AS_OF = dt.datetime(2026, 3, 1)


def _tables(prefix: str) -> dict[str, pd.DataFrame]:
    users = pd.DataFrame(
        {
            "id": ["u1", "u2", "u3", "u4", "u5"],
            "created_at": [
                T("2026-01-01"),
                T("2026-02-01"),
                T("2026-03-01"),  # created at the cutoff: not yet a profile
                T("2026-04-01"),
                T("2025-12-01"),
            ],
        }
    )
    orders = pd.DataFrame(
        [
            ("u1", T("2026-01-10"), 10.0),
            ("u1", T("2026-02-20"), 30.0),
            ("u1", T("2026-02-28 23:00"), 20.0),
            ("u1", T("2026-03-01 00:00"), 999.0),  # at the cutoff: the future
            ("u1", T("2026-03-05"), 50.0),
            ("u2", T("2026-03-10"), 5.0),
            ("u5", T("2025-12-15"), 100.0),
            ("u5", T("2026-02-01"), None),
            (None, T("2026-02-01"), 1000.0),
        ],
        columns=["user_id", "timestamp", "revenue"],
    )
    tracks = pd.DataFrame(
        [
            ("u1", T("2026-02-25 10:00"), "A"),
            ("u1", T("2026-02-26 10:00"), "B"),
            ("u1", T("2026-02-26 11:00"), "A"),
            ("u1", T("2026-01-15"), "C"),
            ("u1", T("2026-03-02"), "Z"),
        ],
        columns=["user_id", "timestamp", "event"],
    )
    pages = pd.DataFrame(
        [
            ("u1", T("2026-02-27 12:00", tz="UTC")),
            ("u1", T("2026-01-05", tz="UTC")),
            ("u5", T("2026-03-03", tz="UTC")),
        ],
        columns=["user_id", "timestamp"],
    )
    return {
        f"{prefix}_users": users,
        f"{prefix}_orders": orders,
        f"{prefix}_tracks": tracks,
        f"{prefix}_pages": pages,
    }


@pytest.fixture
def tiny(wh, unique_name):
    """Hand-made tables (pages with time-zone-aware timestamps) in this test's warehouse."""
    for name, frame in _tables(unique_name).items():
        wh.con.create_table(name, ibis.memtable(frame))
    mapping = TableMapping(
        profiles_table=f"{unique_name}_users",
        orders_table=f"{unique_name}_orders",
        tracks_table=f"{unique_name}_tracks",
        pages_table=f"{unique_name}_pages",
    )
    yield wh, mapping
    for name in _tables(unique_name):
        wh.con.drop_table(name, force=True)


def _by_id(expr) -> pd.DataFrame:
    return expr.to_pandas().set_index("profile_id").sort_index()


def test_features_by_hand(tiny):
    wh, mapping = tiny
    f = _by_id(build_features(wh, mapping, as_of=AS_OF))
    assert list(f.index) == ["u1", "u2", "u5"]  # u3 (at the cutoff) and u4 (later) are not yet
    assert list(f.columns) == feature_columns(mapping) == list(FEATURE_COLUMNS)
    assert not f.isna().any().any()

    u1 = f.loc["u1"]
    expected = {
        "tenure_days": 59,
        "orders_count": 3,
        "orders_7d": 1,
        "orders_30d": 2,
        "orders_90d": 3,
        "revenue_sum": 60.0,
        "revenue_mean": 20.0,
        "revenue_7d": 20.0,
        "revenue_30d": 50.0,
        "revenue_90d": 60.0,
        "days_since_first_order": 50,
        "days_since_last_order": 1 / 24,
        "orders_trend": math.log(3 / 2),  # 2 orders in the last 30 days, 1 in the 30 before
        "tracks_count": 4,
        "tracks_7d": 3,
        "tracks_30d": 3,
        "tracks_90d": 4,
        "tracks_trend": math.log(4 / 2),
        "distinct_event_types": 3,
        "pages_count": 2,
        "pages_7d": 1,
        "pages_30d": 1,
        "pages_90d": 2,
        "pages_trend": 0.0,
        "days_since_last_visit": 1.5,  # the page view of Feb 27 noon
    }
    for name, value in expected.items():
        assert u1[name] == pytest.approx(value), name

    u2 = f.loc["u2"]  # no event before the cutoff: zeros, and tenure for the days-since
    assert u2["tenure_days"] == pytest.approx(28)
    assert u2["days_since_last_order"] == pytest.approx(28)
    assert u2["days_since_last_visit"] == pytest.approx(28)
    assert u2[["orders_count", "revenue_sum", "tracks_count", "pages_trend"]].eq(0).all()

    u5 = f.loc["u5"]  # an order without revenue still counts as an order
    assert u5["orders_count"] == 2 and u5["revenue_sum"] == 100.0
    assert u5["revenue_mean"] == 100.0 and u5["orders_90d"] == 2


def test_feature_types_are_integers_and_floats(tiny):
    wh, mapping = tiny
    schema = build_features(wh, mapping, as_of=AS_OF).schema()
    assert schema["orders_count"].is_integer() and schema["tracks_30d"].is_integer()
    assert schema["distinct_event_types"].is_integer()
    assert schema["revenue_sum"].is_floating() and schema["tenure_days"].is_floating()


def test_labels_by_hand(tiny):
    wh, mapping = tiny
    lab = _by_id(build_labels(wh, mapping, cutoff=AS_OF, horizon_days=30))
    assert list(lab.index) == ["u1", "u2", "u5"]
    assert lab.loc["u1", "ltv"] == pytest.approx(1049.0)  # the order at the cutoff counts here
    assert lab["churned"].to_dict() == {"u1": 0, "u2": 0, "u5": 1}
    assert lab.loc["u2", "ltv"] == 5.0 and lab.loc["u5", "ltv"] == 0.0

    short = _by_id(build_labels(wh, mapping, cutoff=AS_OF, horizon_days=4))
    assert short.loc["u1", "ltv"] == pytest.approx(999.0)  # Mar 5 is outside [Mar 1, Mar 5)
    assert short["churned"].to_dict() == {"u1": 0, "u2": 1, "u5": 1}

    active = _by_id(build_labels(wh, mapping, cutoff=AS_OF, horizon_days=30, churn_on="activity"))
    assert active["churned"].to_dict() == {"u1": 0, "u2": 0, "u5": 0}  # u5 viewed a page


def test_profiles_without_creation_time_start_at_their_first_event(tiny):
    wh, mapping = tiny
    mapping = TableMapping.from_dict({**mapping.to_dict(), "profile_created_at": None})
    f = _by_id(build_features(wh, mapping, as_of=AS_OF))
    assert list(f.index) == ["u1", "u5"]  # u2 has no event before the cutoff
    assert f.loc["u1", "tenure_days"] == pytest.approx(55)  # first seen: page view of Jan 5
    assert f.loc["u5", "tenure_days"] == pytest.approx(76)  # first order Dec 15
    assert profile_count(wh, mapping, as_of=AS_OF) == 2


def test_mapping_without_activity_tables(tiny):
    wh, mapping = tiny
    mapping = TableMapping.from_dict(
        {**mapping.to_dict(), "tracks_table": None, "pages_table": None}
    )
    f = build_features(wh, mapping, as_of=AS_OF).to_pandas()
    assert list(f.columns)[1:] == feature_columns(mapping)
    assert not any(c.startswith(("tracks", "pages", "days_since_last_visit")) for c in f.columns)
    with pytest.raises(ConfigError, match="tracks or pages"):
        build_labels(wh, mapping, cutoff=AS_OF, horizon_days=30, churn_on="activity")


def test_data_end_is_the_latest_event(tiny):
    wh, mapping = tiny
    assert data_end(wh, mapping) == dt.datetime(2026, 3, 10)


def _copy_sample(wh, prefix: str) -> TableMapping:
    for table in ("users", "order_completed", "tracks", "pages"):
        wh.con.create_table(f"{prefix}_{table}", wh.table(table))
    return TableMapping(
        profiles_table=f"{prefix}_users",
        orders_table=f"{prefix}_order_completed",
        tracks_table=f"{prefix}_tracks",
        pages_table=f"{prefix}_pages",
    )


def test_events_after_the_cutoff_change_no_feature(wh, unique_name):
    """The leakage test: more future orders, tracks, pages and profiles; the same features."""
    mapping = _copy_sample(wh, unique_name)
    try:
        cutoff = dt.datetime(2026, 6, 1)
        before = _by_id(build_features(wh, mapping, as_of=cutoff))
        ids = before.index[:50].tolist()
        future = [cutoff, cutoff + dt.timedelta(seconds=1), cutoff + dt.timedelta(days=3)]
        new_users = pd.DataFrame({"id": ["late1", "late2"], "created_at": [cutoff, future[2]]})
        wh.con.insert(mapping.profiles_table, new_users.reindex(columns=wh.table("users").columns))
        rows = [(i, ts) for i in [*ids, "late1", "late2"] for ts in future]
        orders = pd.DataFrame(rows, columns=["user_id", "timestamp"]).assign(revenue=500.0)
        tracks = pd.DataFrame(rows, columns=["user_id", "timestamp"]).assign(event="Brand New")
        pages = pd.DataFrame(rows, columns=["user_id", "timestamp"]).assign(path="/x")
        for table, frame in (
            (mapping.orders_table, orders),
            (mapping.tracks_table, tracks),
            (mapping.pages_table, pages),
        ):
            wh.con.insert(table, frame.reindex(columns=wh.table(table).columns))
        after = _by_id(build_features(wh, mapping, as_of=cutoff))
        pd.testing.assert_frame_equal(before, after)
        # ...while the labels do see the new future (the check above could not pass vacuously)
        labels = _by_id(build_labels(wh, mapping, cutoff=cutoff, horizon_days=30))
        assert (labels.loc[ids, "churned"] == 0).all()
        assert (labels.loc[ids, "ltv"] >= 1500.0).all()
        later = _by_id(build_features(wh, mapping, as_of=cutoff + dt.timedelta(days=4)))
        assert (later.loc[ids, "orders_count"] >= before.loc[ids, "orders_count"] + 3).all()
        assert {"late1", "late2"} <= set(later.index)
    finally:
        for table in ("users", "order_completed", "tracks", "pages"):
            wh.con.drop_table(f"{unique_name}_{table}", force=True)


@pytest.mark.postgres
def test_features_and_labels_are_the_same_on_duckdb_and_postgres(duckdb_wh, postgres_wh):
    cutoff = dt.date(2026, 5, 1)
    frames = []
    for wh in (duckdb_wh, postgres_wh):
        f = build_features(wh, as_of=cutoff).join(
            build_labels(wh, cutoff=cutoff, horizon_days=90), "profile_id"
        )
        frames.append(f.to_pandas().sort_values("profile_id", ignore_index=True))
    duck, pg = frames
    assert len(duck) > 1000
    assert list(duck.columns) == list(pg.columns)
    for col in duck.columns:
        if col == "profile_id":
            assert duck[col].tolist() == pg[col].tolist()
        else:
            assert duck[col].to_numpy(float) == pytest.approx(pg[col].to_numpy(float), abs=1e-6)


@pytest.mark.parametrize("dialect", ["duckdb", "postgres"])
def test_features_compile_to_one_query_that_scans_each_table_once(duckdb_wh, dialect):
    expr = build_features(duckdb_wh, as_of=dt.date(2026, 5, 1))
    sql = ibis.to_sql(expr, dialect=dialect)
    assert sql.count(";") <= 1
    for table in ("users", "order_completed", "tracks", "pages"):
        assert sql.count(f'FROM "{table}"') == 1, table


def test_mapping_round_trip_and_errors(duckdb_wh):
    mapping = TableMapping(tracks_table=None)
    assert TableMapping.from_dict(mapping.to_dict()) == mapping
    with pytest.raises(ConfigError, match=r"unknown key.*revnue"):
        TableMapping.from_dict({"revnue": "amount"})
    with pytest.raises(ConfigError, match="orders_table must be a non-empty name"):
        TableMapping(orders_table="")
    with pytest.raises(UnknownTableError, match="'amount' not found in table 'order_completed'"):
        TableMapping(order_revenue="amount").validate(duckdb_wh)
    with pytest.raises(ConfigError, match=r"order_completed\.products must be numeric"):
        TableMapping(order_revenue="products").validate(duckdb_wh)
    with pytest.raises(ConfigError, match=r"users\.email must be a timestamp or date"):
        TableMapping(profile_created_at="email").validate(duckdb_wh)
    with pytest.raises(UnknownTableError, match="'nope' not found"):
        build_features(duckdb_wh, TableMapping(orders_table="nope"), as_of=AS_OF)
    with pytest.raises(ConfigError, match="windows"):
        build_features(duckdb_wh, as_of=AS_OF, windows=(0, 7))
    with pytest.raises(ConfigError, match="ISO date"):
        build_features(duckdb_wh, as_of="first of May")
    with pytest.raises(ConfigError, match="horizon_days"):
        build_labels(duckdb_wh, cutoff=AS_OF, horizon_days=0)
    with pytest.raises(ConfigError, match="churn_on"):
        build_labels(duckdb_wh, cutoff=AS_OF, horizon_days=30, churn_on="pages")
    TableMapping().validate(duckdb_wh)  # the defaults fit the sample


def test_custom_windows_name_their_columns(duckdb_wh):
    expr = build_features(duckdb_wh, as_of=AS_OF, windows=(14, 60))
    assert "orders_14d" in expr.columns and "pages_60d" in expr.columns
    assert "orders_7d" not in expr.columns
    assert list(expr.columns)[1:] == feature_columns(windows=(60, 14))
