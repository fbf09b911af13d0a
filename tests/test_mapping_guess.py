"""The table-mapping guess on the demo schema and on a purchase log of another shape (CDNOW)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from sqltraits_kit.modelling.features import TableMapping
from sqltraits_kit.modelling.mapping_guess import guess_mapping
from tests.support.models import cdnow_crm_tables


def test_the_demo_schema_is_guessed_exactly(wh):
    guess = guess_mapping(wh, tables=["users", "accounts", "order_completed", "tracks", "pages"])
    assert guess.complete
    assert guess.mapping == TableMapping()
    assert "unique over 2,000 rows" in guess.reasons["profiles_table"]
    guess.mapping.validate(wh)


@pytest.fixture
def crm_tables(wh, unique_name):
    """CDNOW's purchase log as a CRM would hold it: integer ids, other names, no activity."""
    crm = cdnow_crm_tables()
    orders = crm["orders"]
    customers = crm["customers"].assign(
        segment=lambda f: ["a" if i % 2 else "b" for i in f.customer_no]
    )
    names = {"customers": f"{unique_name}_crm_customers", "orders": f"{unique_name}_shop_orders"}
    wh.con.create_table(names["customers"], customers)
    wh.con.create_table(names["orders"], orders)
    # A lookalike that must not win: one row per order, an id, a time and a number.
    wh.con.create_table(
        f"{unique_name}_refunds",
        pd.DataFrame(
            {"refund_id": [1, 2, 3], "at": [dt.datetime(1997, 3, 1)] * 3, "amount": [1.0] * 3}
        ),
    )
    return names, [*names.values(), f"{unique_name}_refunds"]


def test_a_crm_schema_with_integer_ids_and_no_activity(wh, crm_tables):
    names, tables = crm_tables
    guess = guess_mapping(wh, tables=tables)
    assert guess.complete, guess.problems
    m = guess.mapping
    assert (m.orders_table, m.order_profile_id) == (names["orders"], "customer_no")
    assert (m.order_timestamp, m.order_revenue) == ("ordered_at", "dollars")
    assert (m.profiles_table, m.profile_id) == (names["customers"], "customer_no")
    assert m.profile_created_at == "first_order_at"
    assert m.tracks_table is None and m.pages_table is None
    assert "order key" in guess.reasons["order_profile_id"]
    assert guess.reasons["tracks_table"].startswith("none")
    m.validate(wh)


def test_orders_alone_make_their_own_profiles(wh, crm_tables):
    names, _ = crm_tables
    guess = guess_mapping(wh, tables=[names["orders"]])
    assert guess.complete
    assert guess.mapping.profiles_table == names["orders"]
    assert guess.mapping.profile_created_at is None
    assert "first order" in guess.reasons["profiles_table"]


def test_no_log_means_no_guess_and_says_why(wh, unique_name):
    name = f"{unique_name}_people"
    wh.con.create_table(name, pd.DataFrame({"user_id": ["a", "b"], "age": [30, 40]}))
    guess = guess_mapping(wh, tables=[name])
    assert not guess.complete and guess.mapping is None
    assert guess.problems and "no orders table found" in guess.problems[0]
    assert guess.to_dict()["mapping"] is None


def test_the_kits_own_tables_are_never_candidates(duckdb_wh):
    # Shaped like a better orders table than the demo's (order-like name, revenue, many rows per
    # id): only the kit-table rule keeps it out.
    when = dt.datetime(2026, 1, 1)
    kit = pd.DataFrame(
        {"user_id": ["u00000001"] * 50, "ordered_at": [when] * 50, "revenue": [1.0] * 50}
    )
    duckdb_wh.con.create_table("sqltraits_state__orders", kit)
    duckdb_wh.con.create_table("churn_orders_history", kit)
    guess = guess_mapping(duckdb_wh)
    assert guess.mapping == TableMapping()
    assert "sqltraits_state__orders" not in str(guess.to_dict())
    assert guess_mapping(duckdb_wh, tables=["churn_orders_history"]).mapping is None
