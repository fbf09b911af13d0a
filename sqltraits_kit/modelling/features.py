"""Point-in-time features and labels, each built as one Ibis expression that runs in the warehouse.

Time convention: a cutoff is an instant (a date means its midnight, UTC). Everything strictly
before it is history and may feed a feature; the label horizon is ``[cutoff, cutoff + H days)``.
So an event stamped exactly at the cutoff already belongs to the future, and adding any event at
or after the cutoff changes no feature (the leakage test checks this).

Every source table is filtered and aggregated per profile on its own, then the aggregates are
left-joined onto the profiles table: the warehouse scans each event table once, and only the
per-profile result (one row per profile) ever leaves it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.modelling.feature_spec import FeatureSpec, spec_features
from sqltraits_kit.modelling.mapping import CHURN_ON, TableMapping, to_instant

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "DEFAULT_WINDOWS",
    "FEATURE_COLUMNS",
    "FeatureSpec",
    "TableMapping",
    "as_spec",
    "build_features",
    "build_labels",
    "data_end",
    "data_span",
    "feature_columns",
    "profile_count",
    "profiles_as_of",
    "to_instant",
]

DEFAULT_WINDOWS: tuple[int, ...] = (7, 30, 90)
_DAY_SECONDS = 86_400.0


def _windows(windows: Sequence[int]) -> tuple[int, ...]:
    try:
        out = tuple(sorted({int(w) for w in windows}))
    except (TypeError, ValueError):
        raise ConfigError(f"windows must be whole numbers of days, got {windows!r}") from None
    if not out or out[0] < 1:
        raise ConfigError(f"windows must be at least one positive number of days, got {windows!r}")
    return out


def _trend_days(windows: tuple[int, ...]) -> int:
    # The middle window: long enough to hold a few events, short enough to see a fading customer.
    return windows[len(windows) // 2]


def feature_columns(
    mapping: TableMapping | None = None, *, windows: Sequence[int] = DEFAULT_WINDOWS
) -> list[str]:
    """The feature columns :func:`build_features` makes for this mapping, in order."""
    mapping = mapping or TableMapping()
    ws = _windows(windows)
    cols = ["tenure_days", "orders_count"]
    cols += [f"orders_{w}d" for w in ws]
    cols += ["revenue_sum", "revenue_mean"]
    cols += [f"revenue_{w}d" for w in ws]
    cols += ["days_since_first_order", "days_since_last_order", "orders_trend"]
    if mapping.tracks_table:
        cols += ["tracks_count", *[f"tracks_{w}d" for w in ws], "tracks_trend"]
        if mapping.track_event:
            cols.append("distinct_event_types")
    if mapping.pages_table:
        cols += ["pages_count", *[f"pages_{w}d" for w in ws], "pages_trend"]
    if mapping.activity_sources():
        cols.append("days_since_last_visit")
    return cols


#: The features of the default mapping and windows.
FEATURE_COLUMNS: tuple[str, ...] = tuple(feature_columns())


def _literal_for(column: ir.Column, when: dt.datetime) -> ir.Value:
    """A timestamp literal comparable with ``column`` (time zones handled, no implicit casts)."""
    import ibis

    dtype = column.type()
    if dtype.is_timestamp() and dtype.timezone is not None:
        return ibis.literal(when.replace(tzinfo=dt.UTC), type=dtype)
    return ibis.literal(when, type="timestamp")


def _time(table: ir.Table, column: str) -> ir.Column:
    col = table[column]
    return col.cast("timestamp") if col.type().is_date() else col


def _events(
    wh: Warehouse,
    table: str,
    id_col: str,
    ts_col: str,
    id_type: Any,
    *,
    start: dt.datetime | None,
    end: dt.datetime,
    extra: Mapping[str, str] | None = None,
) -> ir.Table:
    """Rows of ``table`` in ``[start, end)`` as (profile_id, ts, extra...), without NULL keys."""
    t = wh.table(table)
    for col in (id_col, ts_col, *(extra or {}).values()):
        wh.column(t, col, table_name=table)
    ts = _time(t, ts_col)
    pid = t[id_col] if t[id_col].type() == id_type else t[id_col].cast(id_type)
    cols = {"profile_id": pid, "ts": ts}
    cols.update({name: t[col] for name, col in (extra or {}).items()})
    ev = t.select(**cols)
    cond = [ev.profile_id.notnull(), ev.ts.notnull(), ev.ts < _literal_for(ev.ts, end)]
    if start is not None:
        cond.append(ev.ts >= _literal_for(ev.ts, start))
    return ev.filter(*cond)


def _trend(ev: ir.Table, as_of: dt.datetime, days: int) -> ir.Value:
    """ln((n recent + 1) / (n earlier + 1)): 0 when steady, negative when activity fades."""
    recent_from = _literal_for(ev.ts, as_of - dt.timedelta(days=days))
    earlier_from = _literal_for(ev.ts, as_of - dt.timedelta(days=2 * days))
    recent = ev.count(where=ev.ts >= recent_from).cast("float64")
    earlier = ev.count(where=(ev.ts >= earlier_from) & (ev.ts < recent_from)).cast("float64")
    return ((recent + 1.0) / (earlier + 1.0)).ln()


def profiles_as_of(wh: Warehouse, mapping: TableMapping, as_of: dt.datetime) -> ir.Table:
    """The profiles that existed before ``as_of`` (one ``profile_id`` column), as an expression."""
    import ibis

    t = wh.table(mapping.profiles_table)
    wh.column(t, mapping.profile_id, table_name=mapping.profiles_table)
    if mapping.profile_created_at:
        wh.column(t, mapping.profile_created_at, table_name=mapping.profiles_table)
        created = _time(t, mapping.profile_created_at)
        prof = t.select(profile_id=t[mapping.profile_id], created=created)
        prof = prof.filter(
            prof.profile_id.notnull(),
            prof.created.notnull(),
            prof.created < _literal_for(prof.created, as_of),
        )
        # Segment's users table can hold a profile twice across loads: one row per profile.
        return prof.group_by("profile_id").aggregate(
            created_epoch=prof.created.min().epoch_seconds().cast("float64")
        )
    # No creation time: a profile exists from its first event of any mapped kind.
    id_type = t[mapping.profile_id].type()
    firsts = []
    sources = [(mapping.orders_table, mapping.order_profile_id, mapping.order_timestamp)]
    for table, id_col, ts_col in sources + mapping.activity_sources():
        ev = _events(wh, table, id_col, ts_col, id_type, start=None, end=as_of)
        firsts.append(
            ev.group_by("profile_id").aggregate(
                created_epoch=ev.ts.min().epoch_seconds().cast("float64")
            )
        )
    seen = ibis.union(*firsts)
    seen = seen.group_by("profile_id").aggregate(created_epoch=seen.created_epoch.min())
    known = t.select(profile_id=t[mapping.profile_id]).distinct()
    return known.join(seen, "profile_id")


def profile_count(
    wh: Warehouse, mapping: TableMapping | None = None, *, as_of: dt.date | dt.datetime | str
) -> int:
    """How many profiles existed before ``as_of`` (the rows :func:`build_features` makes)."""
    mapping = mapping or TableMapping()
    return int(profiles_as_of(wh, mapping, to_instant(as_of, name="as_of")).count().execute())


def as_spec(spec: FeatureSpec | Mapping[str, Any] | None) -> FeatureSpec | None:
    """A :class:`FeatureSpec` from a spec, its dict form (as on a model card) or None."""
    if spec is None or isinstance(spec, FeatureSpec):
        return spec
    return FeatureSpec.from_dict(spec)


def build_features(
    wh: Warehouse,
    mapping: TableMapping | None = None,
    *,
    as_of: dt.date | dt.datetime | str,
    windows: Sequence[int] = DEFAULT_WINDOWS,
    spec: FeatureSpec | Mapping[str, Any] | None = None,
) -> ir.Table:
    """One row per profile that existed before ``as_of``: ``profile_id`` + numeric features.

    Only events strictly before ``as_of`` are read. Windows count the last ``w`` days before
    ``as_of``; the ``*_trend`` features compare the last ``m`` days with the ``m`` days before
    them, ``m`` being the middle window. No feature is NULL: counts and sums are 0 without
    events, the ``days_since_*`` features fall back to the profile's tenure (as if its last event
    were its creation), ``revenue_mean`` is 0 without orders.
    """
    mapping = mapping or TableMapping()
    as_of = to_instant(as_of, name="as_of")
    ws = _windows(windows)
    trend_days = _trend_days(ws)
    as_of_epoch = as_of.replace(tzinfo=dt.UTC).timestamp()
    since = {w: as_of - dt.timedelta(days=w) for w in ws}

    profiles = profiles_as_of(wh, mapping, as_of)
    id_type = wh.table(mapping.profiles_table)[mapping.profile_id].type()

    orders = _events(
        wh,
        mapping.orders_table,
        mapping.order_profile_id,
        mapping.order_timestamp,
        id_type,
        start=None,
        end=as_of,
        extra={"revenue": mapping.order_revenue},
    )
    orders = orders.mutate(revenue=orders.revenue.cast("float64"))
    o_aggs: dict[str, ir.Value] = {
        "orders_count": orders.count(),
        "revenue_sum": orders.revenue.sum(),
        "revenue_mean": orders.revenue.mean(),
        "first_order_epoch": orders.ts.min().epoch_seconds().cast("float64"),
        "last_order_epoch": orders.ts.max().epoch_seconds().cast("float64"),
        "orders_trend": _trend(orders, as_of, trend_days),
    }
    for w in ws:
        recent = orders.ts >= _literal_for(orders.ts, since[w])
        o_aggs[f"orders_{w}d"] = orders.count(where=recent)
        o_aggs[f"revenue_{w}d"] = orders.revenue.sum(where=recent)
    joined = profiles.left_join(orders.group_by("profile_id").aggregate(**o_aggs), "profile_id")

    last_visit_cols = []
    for prefix, table, id_col, ts_col in (
        ("tracks", mapping.tracks_table, mapping.track_profile_id, mapping.track_timestamp),
        ("pages", mapping.pages_table, mapping.page_profile_id, mapping.page_timestamp),
    ):
        if not table:
            continue
        extra = (
            {"event": mapping.track_event} if prefix == "tracks" and mapping.track_event else None
        )
        ev = _events(wh, table, id_col, ts_col, id_type, start=None, end=as_of, extra=extra)
        aggs: dict[str, ir.Value] = {
            f"{prefix}_count": ev.count(),
            f"{prefix}_last_epoch": ev.ts.max().epoch_seconds().cast("float64"),
            f"{prefix}_trend": _trend(ev, as_of, trend_days),
        }
        for w in ws:
            aggs[f"{prefix}_{w}d"] = ev.count(where=ev.ts >= _literal_for(ev.ts, since[w]))
        if extra:
            aggs["distinct_event_types"] = ev.event.nunique()
        joined = joined.left_join(ev.group_by("profile_id").aggregate(**aggs), "profile_id")
        last_visit_cols.append(f"{prefix}_last_epoch")

    tenure = (as_of_epoch - joined.created_epoch) / _DAY_SECONDS
    out: dict[str, ir.Value] = {"profile_id": joined.profile_id, "tenure_days": tenure}
    for name in feature_columns(mapping, windows=ws)[1:]:
        if name == "days_since_first_order":
            value = ((as_of_epoch - joined.first_order_epoch) / _DAY_SECONDS).fill_null(tenure)
        elif name == "days_since_last_order":
            value = ((as_of_epoch - joined.last_order_epoch) / _DAY_SECONDS).fill_null(tenure)
        elif name == "days_since_last_visit":
            import ibis

            lasts = [joined[c] for c in last_visit_cols]
            # GREATEST skips NULLs on DuckDB and PostgreSQL alike.
            last = lasts[0] if len(lasts) == 1 else ibis.greatest(*lasts)
            value = ((as_of_epoch - last) / _DAY_SECONDS).fill_null(tenure)
        elif _is_count(name):
            value = joined[name].fill_null(0)
        else:
            value = joined[name].fill_null(0.0)
        out[name] = value
    # Casts last: counts as integers, everything else as float64, so both backends agree.
    typed = {
        k: v if k == "profile_id" else v.cast("int64" if _is_count(k) else "float64")
        for k, v in out.items()
    }
    result = joined.select(**typed)
    spec = as_spec(spec)
    if spec is not None:
        clash = sorted(set(spec.columns()) & set(result.columns))
        if clash:
            raise ConfigError(f"feature spec: {', '.join(clash)} is a built-in feature's name")
        result = spec_features(wh, mapping, spec, as_of=as_of, profiles=result)
    return result


def _is_count(name: str) -> bool:
    if name in ("distinct_event_types",) or name.endswith("_count"):
        return True
    head, _, tail = name.rpartition("_")
    return head in ("orders", "tracks", "pages") and tail.endswith("d") and tail[:-1].isdigit()


def build_labels(
    wh: Warehouse,
    mapping: TableMapping | None = None,
    *,
    cutoff: dt.date | dt.datetime | str,
    horizon_days: int,
    churn_on: str = "orders",
) -> ir.Table:
    """``profile_id, churned, ltv`` for profiles that existed before ``cutoff``.

    ``churned`` is 1 when the profile places no order (``churn_on="activity"``: has no order,
    track or page event) in ``[cutoff, cutoff + horizon_days)``; ``ltv`` is its revenue there.
    """
    import ibis

    mapping = mapping or TableMapping()
    cutoff = to_instant(cutoff)
    if int(horizon_days) != horizon_days or horizon_days < 1:
        raise ConfigError(f"horizon_days must be a whole number >= 1, got {horizon_days!r}")
    if churn_on not in CHURN_ON:
        raise ConfigError(f"churn_on must be one of {CHURN_ON}, got {churn_on!r}")
    end = cutoff + dt.timedelta(days=int(horizon_days))
    profiles = profiles_as_of(wh, mapping, cutoff)
    id_type = wh.table(mapping.profiles_table)[mapping.profile_id].type()
    orders = _events(
        wh,
        mapping.orders_table,
        mapping.order_profile_id,
        mapping.order_timestamp,
        id_type,
        start=cutoff,
        end=end,
        extra={"revenue": mapping.order_revenue},
    )
    o = orders.group_by("profile_id").aggregate(
        future_orders=orders.count(), ltv=orders.revenue.cast("float64").sum()
    )
    joined = profiles.left_join(o, "profile_id")
    active = joined.future_orders.fill_null(0) > 0
    if churn_on == "activity":
        sources = mapping.activity_sources()
        if not sources:
            raise ConfigError("churn_on='activity' needs a tracks or pages table in the mapping")
        parts = [
            _events(wh, table, id_col, ts_col, id_type, start=cutoff, end=end)
            .select("profile_id")
            .distinct()
            for table, id_col, ts_col in sources
        ]
        seen = ibis.union(*parts, distinct=True).mutate(seen_active=ibis.literal(1))
        joined = joined.left_join(seen, "profile_id")
        active = active | joined.seen_active.notnull()
    return joined.select(
        profile_id=joined.profile_id,
        churned=ibis.ifelse(active, 0, 1).cast("int64"),
        ltv=joined.ltv.fill_null(0.0).cast("float64"),
    )


def data_end(wh: Warehouse, mapping: TableMapping | None = None) -> dt.datetime:
    """The latest event time across the mapped order and activity tables (naive UTC)."""
    return data_span(wh, mapping)[1]


def data_span(
    wh: Warehouse, mapping: TableMapping | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """The earliest and latest event times across the mapped order and activity tables (naive
    UTC): where the log starts (nothing before it is known) and where it ends."""
    import pandas as pd

    mapping = mapping or TableMapping()
    sources = [(mapping.orders_table, mapping.order_profile_id, mapping.order_timestamp)]
    seen: list[dt.datetime] = []
    for table, _id, ts_col in sources + mapping.activity_sources():
        t = wh.table(table)
        wh.column(t, ts_col, table_name=table)
        ts = _time(t, ts_col)
        row = t.aggregate(first=ts.min(), last=ts.max()).execute().iloc[0]
        for value in (row["first"], row["last"]):
            if value is not None and not pd.isna(value):
                seen.append(to_instant(pd.Timestamp(value).to_pydatetime()))
    if not seen:
        raise ConfigError(
            f"no events in {mapping.orders_table!r} or the activity tables: nothing to learn from"
        )
    return min(seen), max(seen)
