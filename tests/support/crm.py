"""A warehouse that is not the demo: CDNOW's purchase log as a CRM holds it (and any real log's
frames written the same way, with their table mapping).

``crm_customers(customer_no, first_order_at, segment)`` and ``shop_orders(order_no,
customer_no, ordered_at, cds, dollars)``: other table and column names than the demo's, integer
ids, no activity tables (issue 18). The app's page tests and the browser journey both use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqltraits_kit.modelling.features import TableMapping
from sqltraits_kit.warehouse import connect
from tests.support.models import cdnow_crm_tables

TABLES = {"customers": "crm_customers", "orders": "shop_orders"}
SEGMENTS = ("retail", "wholesale", "collector")


def crm_mapping(
    customers: str = TABLES["customers"],
    orders: str = TABLES["orders"],
    *,
    key: str = "customer_no",
    at: str = "ordered_at",
    revenue: str = "dollars",
) -> TableMapping:
    """The table mapping of a CRM log: ``customers`` keyed by ``key`` with ``first_order_at``,
    ``orders`` with ``key``, ``at`` and ``revenue``; no activity tables. The defaults are
    CDNOW's names as :func:`build_crm` writes them."""
    return TableMapping(
        profiles_table=customers,
        profile_id=key,
        profile_created_at="first_order_at",
        orders_table=orders,
        order_profile_id=key,
        order_timestamp=at,
        order_revenue=revenue,
        tracks_table=None,
        pages_table=None,
    )


def write_crm(path: Path, frames: dict[str, Any]) -> Path:
    """Write a log's ``customers`` and ``orders`` frames to the DuckDB file ``path`` (made
    anew) as :data:`TABLES`, and return it."""
    path.unlink(missing_ok=True)
    wh = connect(f"duckdb:///{path}", create=True)
    try:
        for key, name in TABLES.items():
            wh.con.create_table(name, frames[key])
    finally:
        wh.close()
    return path


def build_crm(path: Path) -> Path:
    """Write the CRM warehouse to the DuckDB file ``path`` (made anew) and return it."""
    frames = cdnow_crm_tables()
    customers = frames["customers"]
    customers["segment"] = [SEGMENTS[int(n) % len(SEGMENTS)] for n in customers["customer_no"]]
    return write_crm(path, frames)
