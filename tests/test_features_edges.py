"""Features and labels at their edges: the trend windows' bounds, activity labels, id types.

test_features.py works whole examples by hand; mutation testing (benchmarks/mutation.py) showed
what they leave open: an event exactly on a trend window's bound, which window the trend uses
for two windows, activity seen only *before* the cutoff (it must not count: a label may only
look forward), a profile active in both tracks and pages (one label row, not two), a one-day
horizon, and order ids typed differently from profile ids. In-memory DuckDB, hand-made rows.
"""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest

from sqltraits_kit.errors import ConfigError, UnknownTableError
from sqltraits_kit.modelling.features import TableMapping, build_features, build_labels
from sqltraits_kit.warehouse import connect

AS_OF = dt.datetime(2026, 3, 1)
DAY = dt.timedelta(days=1)
CREATED = dt.datetime(2025, 1, 1)


@pytest.fixture(scope="module")
def wh():
    wh = connect("duckdb:///:memory:")
    yield wh
    wh.close()


def _mapping(wh, name: str, users, orders, tracks=(), pages=()) -> TableMapping:
    frames = {
        "users": pd.DataFrame(users, columns=["id", "created_at"]),
        "orders": pd.DataFrame(orders, columns=["user_id", "timestamp", "revenue"]),
        "tracks": pd.DataFrame(list(tracks), columns=["user_id", "timestamp", "event"]),
        "pages": pd.DataFrame(list(pages), columns=["user_id", "timestamp"]),
    }
    for kind, frame in frames.items():
        if kind in ("tracks", "pages"):
            frame["timestamp"] = pd.to_datetime(frame["timestamp"])
            if frame.empty:  # typed, or DuckDB refuses the NULL-typed columns
                frame = frame.astype({c: "string" for c in frame.columns if c != "timestamp"})
        wh.con.create_table(f"{name}_{kind}", frame, overwrite=True)
    return TableMapping(
        profiles_table=f"{name}_users",
        orders_table=f"{name}_orders",
        tracks_table=f"{name}_tracks",
        pages_table=f"{name}_pages",
    )


def _by_id(expr) -> pd.DataFrame:
    return expr.to_pandas().set_index("profile_id").sort_index()


def test_the_trend_windows_are_closed_below(wh):
    # Default windows (7, 30, 90): the trend compares [as_of - 30 d, as_of) with the 30 days
    # before. "a": one order exactly at each lower bound, one an hour before the earlier one.
    users = [("a", CREATED), ("b", CREATED)]
    orders = [
        ("a", AS_OF - 30 * DAY, 1.0),  # recent (>= as_of - 30 d)
        ("a", AS_OF - 60 * DAY, 1.0),  # earlier (>= as_of - 60 d, < as_of - 30 d)
        ("a", AS_OF - 60 * DAY - dt.timedelta(hours=1), 1.0),  # neither
        ("b", AS_OF - DAY, 1.0),
    ]
    f = _by_id(build_features(wh, _mapping(wh, "trend", users, orders), as_of=AS_OF))
    assert f.loc["a", "orders_trend"] == 0.0  # ln((1 + 1) / (1 + 1))
    assert f.loc["b", "orders_trend"] == pytest.approx(math.log(2))  # ln((1 + 1) / (0 + 1))


def test_with_two_windows_the_trend_uses_the_longer(wh):
    # windows (14, 60): the trend window is windows[len // 2] = 60 days, so an order 20 days
    # ago is recent (with 14 days it would be "earlier" and the trend negative).
    users = [("c", CREATED)]
    orders = [("c", AS_OF - 20 * DAY, 1.0)]
    mapping = _mapping(wh, "trend2", users, orders)
    f = _by_id(build_features(wh, mapping, as_of=AS_OF, windows=(14, 60)))
    assert f.loc["c", "orders_trend"] == pytest.approx(math.log(2))


def test_activity_labels_look_only_forward_and_once_per_profile(wh):
    users = [("before", CREATED), ("both", CREATED), ("buyer", CREATED), ("idle", CREATED)]
    orders = [("buyer", AS_OF + DAY, 12.5), ("before", AS_OF - DAY, 99.0)]
    tracks = [("before", AS_OF - DAY, "x"), ("both", AS_OF + DAY, "x")]
    pages = [("before", AS_OF - 2 * DAY), ("both", AS_OF + 2 * DAY)]
    mapping = _mapping(wh, "activity", users, orders, tracks, pages)

    got = build_labels(wh, mapping, cutoff=AS_OF, horizon_days=30, churn_on="activity")
    labels = got.to_pandas()
    assert sorted(labels["profile_id"]) == ["before", "both", "buyer", "idle"]  # one row each
    by_id = labels.set_index("profile_id")
    # "before" was busy before the cutoff only: churned, whatever it did then
    assert by_id["churned"].to_dict() == {"before": 1, "both": 0, "buyer": 0, "idle": 1}
    assert by_id["ltv"].to_dict() == {"before": 0.0, "both": 0.0, "buyer": 12.5, "idle": 0.0}


def test_a_one_day_horizon_is_allowed_and_shorter_is_refused(wh):
    users = [("a", CREATED), ("b", CREATED)]
    orders = [("a", AS_OF + dt.timedelta(hours=23), 5.0), ("b", AS_OF + DAY, 7.0)]
    mapping = _mapping(wh, "horizon", users, orders)
    labels = _by_id(build_labels(wh, mapping, cutoff=AS_OF, horizon_days=1))
    assert labels["churned"].to_dict() == {"a": 0, "b": 1}  # [cutoff, cutoff + 1 day)
    for bad in (0, 1.5):
        with pytest.raises(
            ConfigError, match=rf"^horizon_days must be a whole number >= 1, got {bad}$"
        ):
            build_labels(wh, mapping, cutoff=AS_OF, horizon_days=bad)


def test_activity_labels_need_an_activity_table(wh):
    mapping = _mapping(wh, "no_activity", [("a", CREATED)], [("a", AS_OF + DAY, 1.0)])
    mapping = TableMapping.from_dict(
        {**mapping.to_dict(), "tracks_table": None, "pages_table": None}
    )
    with pytest.raises(
        ConfigError, match=r"^churn_on='activity' needs a tracks or pages table in the mapping$"
    ):
        build_labels(wh, mapping, cutoff=AS_OF, horizon_days=30, churn_on="activity")


def test_order_ids_of_another_type_are_cast_to_the_profiles(wh):
    # Profiles keyed by integers, orders by the same ids as text (a CSV import, say).
    users = [(1, CREATED), (2, CREATED)]
    orders = [("1", AS_OF - DAY, 3.0), ("1", AS_OF + DAY, 4.0), ("2", AS_OF + 2 * DAY, 6.0)]
    mapping = _mapping(wh, "id_types", users, orders)
    labels = _by_id(build_labels(wh, mapping, cutoff=AS_OF, horizon_days=30))
    assert labels["ltv"].to_dict() == {1: 4.0, 2: 6.0}
    f = _by_id(build_features(wh, mapping, as_of=AS_OF))
    assert f["orders_count"].to_dict() == {1: 1, 2: 0}


def test_a_missing_event_column_names_its_table(wh):
    mapping = _mapping(wh, "missing_col", [("a", CREATED)], [("a", AS_OF + DAY, 1.0)])
    wh.con.create_table(
        "missing_col_orders",
        pd.DataFrame({"user_id": ["a"], "timestamp": [AS_OF + DAY]}),
        overwrite=True,
    )
    with pytest.raises(
        UnknownTableError,
        match=r"^column 'revenue' not found in missing_col_orders \(columns: user_id, timestamp\)$",
    ):
        build_labels(wh, mapping, cutoff=AS_OF, horizon_days=30)
