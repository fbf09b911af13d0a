"""What the Data page shows: the user's tables apart from the kit's own, and activity over time
read through the table mapping (whatever the tables are called), counted in the warehouse.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pandas as pd

from sqltraits_kit.warehouse.kit_tables import is_history_table, is_kit_table

if TYPE_CHECKING:
    from sqltraits_kit.modelling.features import TableMapping
    from sqltraits_kit.warehouse import Warehouse

__all__ = ["GRAINS", "REFERENCE_TABLES", "activity", "table_groups"]

GRAINS = {"day": "D", "week": "W", "month": "M"}
#: Tables of the demo sample that are not data a user brings (the true model parameters).
REFERENCE_TABLES = ("sample_truth",)


def table_groups(wh: Warehouse, /) -> dict[str, list[str]]:
    """The warehouse's tables in three groups: ``yours`` (the data, and the output tables the
    Score page writes), ``reference`` (the demo's true parameters) and ``kit`` (the kit's state,
    staging and history tables)."""
    groups: dict[str, list[str]] = {"yours": [], "reference": [], "kit": []}
    for name in wh.tables():
        if is_kit_table(name) or is_history_table(name):
            groups["kit"].append(name)
        elif name in REFERENCE_TABLES:
            groups["reference"].append(name)
        else:
            groups["yours"].append(name)
    return groups


def _next(period: dt.datetime, grain: str) -> dt.datetime:
    if grain == "day":
        return period + dt.timedelta(days=1)
    if grain == "week":
        return period + dt.timedelta(days=7)
    month = period.month % 12 + 1
    return period.replace(year=period.year + (period.month == 12), month=month)


def activity(wh: Warehouse, mapping: TableMapping, /, *, grain: str = "week") -> pd.DataFrame:
    """Rows per period for the mapped orders and activity tables (``period``, ``table``,
    ``events``), each table with its own timestamp column.

    The last period is dropped when the data ends inside it: a partial week would show as a
    dip that is not in the data.
    """
    import ibis

    if grain not in GRAINS:
        raise ValueError(f"grain must be one of {', '.join(GRAINS)}, got {grain!r}")
    sources = [(mapping.orders_table, mapping.order_timestamp)]
    sources += [(table, ts) for table, _id, ts in mapping.activity_sources()]
    parts, ends = [], []
    for table, column in sources:
        t = wh.table(table)
        ts = t[column].cast("timestamp")
        parts.append(
            t.group_by(period=ts.truncate(GRAINS[grain]))
            .aggregate(events=ibis._.count())
            .mutate(table=ibis.literal(table))
        )
        ends.append(t.aggregate(end=ts.max()).mutate(table=ibis.literal(table)))
    frame = ibis.union(*parts).order_by(["period", "table"]).to_pandas()
    if frame.empty:
        return frame
    last = ibis.union(*ends).to_pandas()["end"].max()
    if pd.notna(last):
        end = pd.Timestamp(last).to_pydatetime().replace(tzinfo=None)
        periods = pd.to_datetime(frame["period"]).dt.tz_localize(None)
        final = periods.max().to_pydatetime()
        if _next(final, grain) - end > dt.timedelta(days=1):  # the data stops inside it
            frame = frame[periods < periods.max()]
    return frame.reset_index(drop=True)
