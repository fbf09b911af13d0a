"""The RFM summary of every customer as of a cutoff: one definition for training and scoring.

Training the BG/NBD + Gamma-Gamma pair, scoring with it (in the warehouse or streamed) and the
scoring benchmark's pull-everything reference all call :func:`rfm_as_of`, so a model is scored
on exactly the summary it was trained on. The orders are read through the table mapping;
everything runs in the warehouse (:func:`sqltraits_kit.modelling.btyd.rfm_summary`).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqltraits_kit.modelling.btyd import rfm_summary

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.modelling.features import TableMapping
    from sqltraits_kit.warehouse import Warehouse

__all__ = ["RFM_TIME_UNIT", "rfm_as_of"]

#: BTYD models count time in weeks (days / 7).
RFM_TIME_UNIT = "W"


def rfm_as_of(
    wh: Warehouse,
    mapping: TableMapping,
    as_of: dt.date | dt.datetime,
    /,
    *,
    id_type: Any = None,
) -> ir.Table:
    """``customer_id, frequency, recency, T, monetary_value`` (weeks) of the orders before
    ``as_of``.

    ``as_of`` is a midnight cutoff: the summary counts whole days up to the day before it (what
    ``rfm_summary`` calls ``calibration_end``). Customers without an order before it are absent;
    the callers score them as new customers (zeros). ``id_type``: cast ``customer_id`` to the
    profile identifier's type, so it joins the profiles.
    """
    day = as_of.date() if isinstance(as_of, dt.datetime) else as_of
    rfm = rfm_summary(
        wh.table(mapping.orders_table),
        customer_id=mapping.order_profile_id,
        timestamp=mapping.order_timestamp,
        amount=mapping.order_revenue,
        calibration_end=day - dt.timedelta(days=1),
        time_unit=RFM_TIME_UNIT,
    )
    if id_type is not None and rfm.customer_id.type() != id_type:
        rfm = rfm.mutate(customer_id=rfm.customer_id.cast(id_type))
    return rfm
