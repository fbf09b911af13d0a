"""A warehouse that is not the demo: CDNOW's purchase log as a CRM holds it.

``crm_customers(customer_no, first_order_at, segment)`` and ``shop_orders(order_no,
customer_no, ordered_at, cds, dollars)``: other table and column names than the demo's, integer
ids, no activity tables (issue 18). The app's page tests and the browser journey both use it.
"""

from __future__ import annotations

from pathlib import Path

from sqltraits_kit.warehouse import connect
from tests.support.models import cdnow_crm_tables

TABLES = {"customers": "crm_customers", "orders": "shop_orders"}
SEGMENTS = ("retail", "wholesale", "collector")


def build_crm(path: Path) -> Path:
    """Write the CRM warehouse to the DuckDB file ``path`` (made anew) and return it."""
    path.unlink(missing_ok=True)
    frames = cdnow_crm_tables()
    customers = frames["customers"]
    customers["segment"] = [SEGMENTS[int(n) % len(SEGMENTS)] for n in customers["customer_no"]]
    wh = connect(f"duckdb:///{path}", create=True)
    try:
        wh.con.create_table(TABLES["customers"], customers)
        wh.con.create_table(TABLES["orders"], frames["orders"])
    finally:
        wh.close()
    return path
