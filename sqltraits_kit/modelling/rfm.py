"""The per-customer RFM summary (frequency, recency, T, spend) of a transaction table, as one
Ibis expression (what the buy-till-you-die models of :mod:`sqltraits_kit.modelling.btyd` fit on),
and the summary of every customer as of a cutoff: one definition for training and scoring.

Training the BG/NBD + Gamma-Gamma pair, scoring with it (in the warehouse or streamed) and the
scoring benchmark's pull-everything reference all call :func:`rfm_as_of`, so a model is scored
on exactly the summary it was trained on.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.types as ir
import pandas as pd

if TYPE_CHECKING:
    from sqltraits_kit.modelling.mapping import TableMapping
    from sqltraits_kit.warehouse import Warehouse

__all__ = ["RFM_TIME_UNIT", "UNIT_DAYS", "rfm_as_of", "rfm_summary"]

#: BTYD models count time in weeks (days / 7).
RFM_TIME_UNIT = "W"

# Day-level grouping always; the unit only rescales durations. "M" is numpy's (and so lifetimes')
# average Gregorian month, 365.2425 / 12 days.
UNIT_DAYS = {"D": 1.0, "W": 7.0, "M": 365.2425 / 12}
_EPOCH = pd.Timestamp("1970-01-01")


def _day_number(when: Any, name: str) -> int:
    try:
        ts = pd.Timestamp(when)
        if ts is pd.NaT:
            raise ValueError
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}={when!r} is not a date or timestamp") from exc
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return (ts.normalize() - _EPOCH).days


def rfm_summary(
    table: ir.Table | pd.DataFrame,
    *,
    customer_id: str,
    timestamp: str,
    amount: str | None = None,
    calibration_end: dt.date | dt.datetime | str,
    observation_end: dt.date | dt.datetime | str | None = None,
    time_unit: str = "W",
) -> ir.Table | pd.DataFrame:
    """Per-customer frequency/recency/T (and spend) from a transaction table, in the warehouse.

    Transactions are grouped per UTC calendar day (values summed). Calibration uses the days up
    to and including ``calibration_end``'s day (its time of day is ignored): ``frequency`` is the
    number of purchase days after the first, ``recency`` the time from the first to the last
    purchase day, ``T`` from the first purchase day to ``calibration_end``, in ``time_unit``
    ("D" days, "W" = days / 7, "M" = days / 30.436875); ``monetary_value`` is the mean value of
    the repeat purchase days (0 without repeats). This equals lifetimes'
    ``summary_data_from_transaction_data(freq="D", freq_multiplier=7)`` for weeks; lifetimes'
    freq="W"/"M" would also merge purchases within a calendar week/month, which we never do.
    With ``observation_end``, ``frequency_holdout`` counts the purchase days in (calibration_end,
    observation_end] and ``monetary_holdout`` is their mean value (0 when none). The monetary
    columns exist only when ``amount`` is given. Customers whose first purchase is after
    ``calibration_end`` are left out.

    Timestamps with a time zone are read in UTC: Ibis pins DuckDB and PostgreSQL sessions to UTC.
    Rows with a NULL customer id or timestamp are not purchases. An Ibis table gives an Ibis
    expression back; a pandas DataFrame is run on DuckDB and gives a DataFrame back.

    Its length is mostly this docstring: the definitions above are the contract the BTYD papers'
    figures are checked against.
    """
    if isinstance(table, pd.DataFrame):
        expr = rfm_summary(
            ibis.memtable(table),
            customer_id=customer_id,
            timestamp=timestamp,
            amount=amount,
            calibration_end=calibration_end,
            observation_end=observation_end,
            time_unit=time_unit,
        )
        return expr.to_pandas()
    if time_unit not in UNIT_DAYS:
        raise ValueError(f"time_unit must be one of {sorted(UNIT_DAYS)}, got {time_unit!r}")
    schema = table.schema()
    for role, col in (("customer_id", customer_id), ("timestamp", timestamp), ("amount", amount)):
        if col is not None and col not in schema:
            raise ValueError(f"{role} column {col!r} is not in the table (has {list(schema)})")
    ts_type = schema[timestamp]
    if not (ts_type.is_timestamp() or ts_type.is_date()):
        raise ValueError(
            f"timestamp column {timestamp!r} must be a date or timestamp, is {ts_type}"
        )
    if amount is not None and not schema[amount].is_numeric():
        raise ValueError(f"amount column {amount!r} must be numeric, is {schema[amount]}")
    cal_day = _day_number(calibration_end, "calibration_end")
    obs_day = (
        cal_day if observation_end is None else _day_number(observation_end, "observation_end")
    )
    if obs_day <= cal_day and observation_end is not None:
        raise ValueError(
            f"observation_end ({observation_end}) must be a later day than "
            f"calibration_end ({calibration_end})"
        )
    unit = UNIT_DAYS[time_unit]

    # Integer day numbers from epoch seconds (dates and timestamps alike): portable, and no date
    # arithmetic in SQL dialects.
    day = (table[timestamp].epoch_seconds() / 86400).floor().cast("int64")
    spend = table[amount].cast("float64") if amount is not None else ibis.literal(0.0)
    tx = table.select(customer_id=table[customer_id], day=day, spend=spend)
    tx = tx.filter(tx.customer_id.notnull(), tx.day.notnull(), tx.day <= obs_day)
    daily = tx.group_by(["customer_id", "day"]).agg(spend=tx.spend.sum())

    cal = daily.filter(daily.day <= cal_day)
    cal = cal.mutate(first_day=cal.day.min().over(group_by=cal.customer_id))
    agg = cal.group_by("customer_id").agg(
        first_day=cal.first_day.min(),
        last_day=cal.day.max(),
        n_days=cal.count(),
        repeat_spend=cal.spend.sum(where=cal.day > cal.first_day),
    )
    columns: dict[str, ir.Value] = {
        "customer_id": agg.customer_id,
        "frequency": (agg.n_days - 1).cast("int64"),
        "recency": ((agg.last_day - agg.first_day).cast("float64") / unit),
        "T": ((ibis.literal(cal_day) - agg.first_day).cast("float64") / unit),
    }
    if amount is not None:
        columns["monetary_value"] = ibis.ifelse(
            agg.n_days > 1, agg.repeat_spend.fill_null(0.0) / (agg.n_days - 1), 0.0
        ).cast("float64")
    summary = agg.select(**columns)
    if observation_end is None:
        return summary

    hold = daily.filter(daily.day > cal_day)
    hold_agg = hold.group_by("customer_id").agg(
        frequency_holdout=hold.count(), monetary_holdout=hold.spend.mean()
    )
    joined = summary.left_join(hold_agg, "customer_id")
    extra = {"frequency_holdout": joined.frequency_holdout.fill_null(0).cast("int64")}
    if amount is not None:
        extra["monetary_holdout"] = joined.monetary_holdout.fill_null(0.0).cast("float64")
    return joined.select(*summary.columns, **extra)


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
