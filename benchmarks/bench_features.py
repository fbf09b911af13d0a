"""Features: the kit's feature builder vs the same features by hand in pandas and in DuckDB SQL.

    python -m benchmarks.bench_features [--customers N] [--runs R] [--quick]

Three ways to get the same per-customer feature table (``FEATURE_COLUMNS`` as of the sample's
last day) into memory, each in its own process:

* **kit** — ``build_features(wh, as_of=...)`` (one Ibis expression) run on DuckDB, to Arrow;
* **DuckDB SQL** — the same features hand-written as one DuckDB query, to Arrow: the engine's
  floor, what the kit's expression can at best match;
* **pandas** — the notebook way: load the users, orders, tracks and pages columns the features
  need into DataFrames (through DuckDB's fast ``.df()``, kinder to pandas than ``read_sql``),
  then filter and ``groupby``, written vectorised (no Python loops over rows).

Timed: from connecting to the finished table in memory (imports excluded). Memory: the peak RSS
of each process. A parity run computes all three once and checks they agree to 1e-6.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

from benchmarks import _harness as h

WINDOWS = (7, 30, 90)
TREND_DAYS = 30  # the middle window, as build_features uses


def _as_of() -> dt.datetime:
    from sqltraits_kit.warehouse.sample import SAMPLE_TODAY

    return SAMPLE_TODAY


# --------------------------------------------------------------------------- the three ways


def _import_kit() -> None:
    """The kit imports Ibis lazily; import it before the clock starts, like the others' imports."""
    import ibis
    import ibis.backends.duckdb
    import ibis.backends.duckdb.converter
    import pyarrow  # noqa: F401

    ibis.duckdb  # noqa: B018 - resolves the backend entry point


def kit_features(path: str) -> dict[str, Any]:
    from sqltraits_kit.modelling.features import build_features
    from sqltraits_kit.warehouse import connect

    _import_kit()
    base = h.rss_mb()
    with h.Timer() as t:
        wh = connect(f"duckdb://{path}", read_only=True)
        table = build_features(wh, as_of=_as_of()).to_pyarrow()
    return t.figures(rows=table.num_rows, columns=table.num_columns, rss_after_imports_mb=base)


def _sql(as_of: dt.datetime) -> str:
    """The features as one hand-written DuckDB query (constants are this module's own)."""
    a = f"TIMESTAMP '{as_of:%Y-%m-%d %H:%M:%S}'"
    e = f"epoch({a})"

    def since(days: int) -> str:
        return f"{a} - INTERVAL {days} DAY"

    def counts(prefix: str) -> str:
        return ",\n".join(
            f"count(*) FILTER (WHERE timestamp >= {since(w)}) AS {prefix}_{w}d" for w in WINDOWS
        )

    def trend(prefix: str) -> str:
        d = TREND_DAYS
        return (
            f"ln((count(*) FILTER (WHERE timestamp >= {since(d)}) + 1.0) / "
            f"(count(*) FILTER (WHERE timestamp >= {since(2 * d)} AND timestamp < {since(d)}) "
            f"+ 1.0)) AS {prefix}_trend"
        )

    revenue_w = ",\n".join(
        f"coalesce(sum(revenue) FILTER (WHERE timestamp >= {since(w)}), 0.0) AS revenue_{w}d"
        for w in WINDOWS
    )
    tenure = f"({e} - epoch(p.created)) / 86400.0"
    return f"""
    WITH p AS (
        SELECT id AS profile_id, min(created_at) AS created FROM users
        WHERE id IS NOT NULL AND created_at < {a} GROUP BY id
    ), o AS (
        SELECT user_id AS profile_id, count(*) AS orders_count, {counts("orders")},
               sum(revenue::DOUBLE) AS revenue_sum, avg(revenue::DOUBLE) AS revenue_mean,
               {revenue_w},
               min(timestamp) AS first_order, max(timestamp) AS last_order, {trend("orders")}
        FROM order_completed WHERE user_id IS NOT NULL AND timestamp < {a} GROUP BY 1
    ), t AS (
        SELECT user_id AS profile_id, count(*) AS tracks_count, {counts("tracks")},
               {trend("tracks")}, count(DISTINCT event) AS distinct_event_types,
               max(timestamp) AS last_track
        FROM tracks WHERE user_id IS NOT NULL AND timestamp < {a} GROUP BY 1
    ), pg AS (
        SELECT user_id AS profile_id, count(*) AS pages_count, {counts("pages")},
               {trend("pages")}, max(timestamp) AS last_page
        FROM pages WHERE user_id IS NOT NULL AND timestamp < {a} GROUP BY 1
    )
    SELECT p.profile_id,
           {tenure} AS tenure_days,
           coalesce(orders_count, 0) AS orders_count,
           {", ".join(f"coalesce(orders_{w}d, 0) AS orders_{w}d" for w in WINDOWS)},
           coalesce(revenue_sum, 0.0) AS revenue_sum,
           coalesce(revenue_mean, 0.0) AS revenue_mean,
           {", ".join(f"coalesce(revenue_{w}d, 0.0) AS revenue_{w}d" for w in WINDOWS)},
           coalesce(({e} - epoch(first_order)) / 86400.0, {tenure}) AS days_since_first_order,
           coalesce(({e} - epoch(last_order)) / 86400.0, {tenure}) AS days_since_last_order,
           coalesce(orders_trend, 0.0) AS orders_trend,
           coalesce(tracks_count, 0) AS tracks_count,
           {", ".join(f"coalesce(tracks_{w}d, 0) AS tracks_{w}d" for w in WINDOWS)},
           coalesce(tracks_trend, 0.0) AS tracks_trend,
           coalesce(distinct_event_types, 0) AS distinct_event_types,
           coalesce(pages_count, 0) AS pages_count,
           {", ".join(f"coalesce(pages_{w}d, 0) AS pages_{w}d" for w in WINDOWS)},
           coalesce(pages_trend, 0.0) AS pages_trend,
           coalesce(({e} - epoch(greatest(last_track, last_page))) / 86400.0, {tenure})
               AS days_since_last_visit
    FROM p
    LEFT JOIN o USING (profile_id)
    LEFT JOIN t USING (profile_id)
    LEFT JOIN pg USING (profile_id)
    """


def sql_features(path: str) -> dict[str, Any]:
    import duckdb
    import pyarrow  # noqa: F401 - imported before the clock starts, as for the kit

    base = h.rss_mb()
    with h.Timer() as t:
        con = duckdb.connect(path, read_only=True)
        table = con.sql(_sql(_as_of())).to_arrow_table()
    return t.figures(rows=table.num_rows, columns=table.num_columns, rss_after_imports_mb=base)


def _pandas_frame(path: str) -> Any:
    import duckdb
    import numpy as np
    import pandas as pd

    as_of = pd.Timestamp(_as_of())
    con = duckdb.connect(path, read_only=True)
    users = con.sql("SELECT id, created_at FROM users").df()
    orders = con.sql('SELECT user_id, "timestamp", revenue FROM order_completed').df()
    tracks = con.sql('SELECT user_id, "timestamp", event FROM tracks').df()
    pages = con.sql('SELECT user_id, "timestamp" FROM pages').df()
    con.close()

    users = users[users["id"].notna() & (users["created_at"] < as_of)]
    prof = users.groupby("id", sort=False)["created_at"].min().rename("created").to_frame()

    def aggregate(df: pd.DataFrame, prefix: str, *, revenue: bool, event: bool) -> pd.DataFrame:
        df = df[df["user_id"].notna() & (df["timestamp"] < as_of)]
        ts = df["timestamp"]
        recent_from = as_of - pd.Timedelta(days=TREND_DAYS)
        cols: dict[str, Any] = {
            "user_id": df["user_id"],
            "ts": ts,
            "recent": ts >= recent_from,
            "earlier": (ts >= recent_from - pd.Timedelta(days=TREND_DAYS)) & (ts < recent_from),
        }
        spec: dict[str, tuple[str, str]] = {
            f"{prefix}_count": ("ts", "size"),
            "_recent": ("recent", "sum"),
            "_earlier": ("earlier", "sum"),
            f"_{prefix}_last": ("ts", "max"),
        }
        if revenue:
            cols["revenue"] = df["revenue"].astype("float64")
            spec |= {
                "revenue_sum": ("revenue", "sum"),
                "revenue_mean": ("revenue", "mean"),
                f"_{prefix}_first": ("ts", "min"),
            }
        for w in WINDOWS:
            inside = ts >= as_of - pd.Timedelta(days=w)
            cols[f"in_{w}"] = inside
            spec[f"{prefix}_{w}d"] = (f"in_{w}", "sum")
            if revenue:
                cols[f"rev_{w}"] = cols["revenue"].where(inside, 0.0)
                spec[f"revenue_{w}d"] = (f"rev_{w}", "sum")
        if event:
            cols["event"] = df["event"]
            spec["distinct_event_types"] = ("event", "nunique")
        out = pd.DataFrame(cols).groupby("user_id", sort=False).agg(**spec)
        out[f"{prefix}_trend"] = np.log((out["_recent"] + 1.0) / (out["_earlier"] + 1.0))
        return out.drop(columns=["_recent", "_earlier"])

    feats = prof.join(aggregate(orders, "orders", revenue=True, event=False), how="left")
    feats = feats.join(aggregate(tracks, "tracks", revenue=False, event=True), how="left")
    feats = feats.join(aggregate(pages, "pages", revenue=False, event=False), how="left")

    def days_before(col: pd.Series) -> pd.Series:
        return (as_of - col).dt.total_seconds() / 86400.0

    tenure = days_before(feats["created"])
    last_visit = feats[["_tracks_last", "_pages_last"]].max(axis=1)
    out = pd.DataFrame(index=feats.index)
    out["tenure_days"] = tenure
    from sqltraits_kit.modelling.features import FEATURE_COLUMNS

    for name in FEATURE_COLUMNS[1:]:
        if name == "days_since_first_order":
            out[name] = days_before(feats["_orders_first"]).fillna(tenure)
        elif name == "days_since_last_order":
            out[name] = days_before(feats["_orders_last"]).fillna(tenure)
        elif name == "days_since_last_visit":
            out[name] = days_before(last_visit).fillna(tenure)
        elif _is_count(name):
            out[name] = feats[name].fillna(0).astype("int64")
        else:
            out[name] = feats[name].fillna(0.0).astype("float64")
    return out.rename_axis("profile_id").reset_index()


def _is_count(name: str) -> bool:
    head, _, tail = name.rpartition("_")
    windowed = head in ("orders", "tracks", "pages") and tail[:-1].isdigit() and tail[-1] == "d"
    return windowed or name.endswith("_count") or name == "distinct_event_types"


def pandas_features(path: str) -> dict[str, Any]:
    import duckdb  # noqa: F401 - imports before the clock starts
    import numpy  # noqa: F401
    import pandas  # noqa: F401

    import sqltraits_kit.modelling.features  # noqa: F401

    base = h.rss_mb()
    with h.Timer() as t:
        frame = _pandas_frame(path)
    return t.figures(rows=len(frame), columns=frame.shape[1], rss_after_imports_mb=base)


def parity(path: str) -> dict[str, Any]:
    """All three computed once and compared column by column (sorted by profile)."""
    import duckdb
    import numpy as np

    from sqltraits_kit.modelling.features import FEATURE_COLUMNS, build_features
    from sqltraits_kit.warehouse import connect

    wh = connect(f"duckdb://{path}", read_only=True)
    kit = build_features(wh, as_of=_as_of()).to_pandas()
    wh.close()
    con = duckdb.connect(path, read_only=True)
    sql = con.sql(_sql(_as_of())).df()
    con.close()
    pdf = _pandas_frame(path)
    frames = {
        name: f.sort_values("profile_id").reset_index(drop=True)
        for name, f in (("kit", kit), ("sql", sql), ("pandas", pdf))
    }
    ids = frames["kit"]["profile_id"].tolist()
    worst: dict[str, Any] = {"max_rel_diff": 0.0, "column": None, "mismatch": None}
    for name in ("sql", "pandas"):
        other = frames[name]
        if other["profile_id"].tolist() != ids:
            worst["mismatch"] = f"{name}: profile ids differ ({len(other)} vs {len(ids)} rows)"
            continue
        for col in FEATURE_COLUMNS:
            if col not in other.columns:
                worst["mismatch"] = f"{name}: no column {col}"
                continue
            a = frames["kit"][col].to_numpy(dtype="float64")
            b = other[col].to_numpy(dtype="float64")
            rel = float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(a)), initial=0.0))
            if rel > worst["max_rel_diff"]:
                worst.update(max_rel_diff=rel, column=f"{name}.{col}")
    return {"seconds": 0.0, "rows": len(ids), **worst}


# --------------------------------------------------------------------------- the script


def main(argv: list[str] | None = None) -> int:
    p = h.parser("Features: kit vs hand-written pandas vs hand-written DuckDB SQL.")
    p.add_argument("--skip-parity", action="store_true", help="do not compare the three outputs")
    args = h.parse(p, argv)
    path = str(h.ensure_sample(args.customers, args.seed))
    bench = h.Bench("features", "Features (build_features vs pandas vs DuckDB SQL)", args)
    here = "benchmarks.bench_features"

    if not args.skip_parity:
        check = h.run_child(f"{here}:parity", {"path": path})
        agree = check["mismatch"] is None and check["max_rel_diff"] <= 1e-6
        bench.add(
            h.Row(
                "parity: max relative difference (kit vs SQL and pandas)",
                check["max_rel_diff"],
                target="≤ 1e-6",
                ok=agree,
                note=check["mismatch"] or (f"worst: {check['column']}" if check["column"] else ""),
            )
        )

    ms = {}
    for name, func in (
        ("kit", "kit_features"),
        ("sql", "sql_features"),
        ("pandas", "pandas_features"),
    ):
        ms[name] = bench.measure(f"{here}:{func}", {"path": path})
    kit, sql, pdf = ms["kit"], ms["sql"], ms["pandas"]
    rows = kit["rows"]
    for m, label in (
        (kit, "kit build_features → Arrow"),
        (sql, "hand-written DuckDB SQL → Arrow"),
        (pdf, "hand-written pandas (load + groupby)"),
    ):
        spread = m.spread("seconds")
        bench.add(
            h.Row(
                f"{label}: wall time",
                m["seconds"],
                "s",
                note=f"CPU {m['cpu_seconds']:.1f} s" + (f"; runs {spread} s" if spread else ""),
            )
        )
        bench.add(h.Row(f"{label}: peak RSS", m["peak_rss_mb"], "MB"))
    speed = h.ratio(pdf["seconds"], kit["seconds"])
    mem = h.ratio(kit["peak_rss_mb"], pdf["peak_rss_mb"])
    floor = h.ratio(kit["seconds"], sql["seconds"])
    cpu_speed = h.ratio(pdf["cpu_seconds"], kit["cpu_seconds"])
    cpu_floor = h.ratio(kit["cpu_seconds"], sql["cpu_seconds"])
    bench.add(
        h.Row(
            "speed-up vs pandas (wall)",
            speed,
            "x",
            "≥ 4x",
            h.at_least(speed, 4.0),
            note=f"by CPU time {cpu_speed:.2f}x",
        )
    )
    bench.add(h.Row("peak memory vs pandas", mem, "x", "≤ 0.33x", h.at_most(mem, 1 / 3)))
    bench.add(
        h.Row(
            "time vs hand-written SQL (wall)",
            floor,
            "x",
            "≤ 1.2x",
            h.at_most(floor, 1.2),
            note=f"by CPU time {cpu_floor:.2f}x",
        )
    )
    bench.note(
        f"{rows:,} feature rows × {kit['columns']} columns; as_of = the sample's last day. "
        "Peak RSS is the whole process, interpreter and imports included (after imports: "
        f"kit {kit['rss_after_imports_mb']:.0f} MB, SQL {sql['rss_after_imports_mb']:.0f} MB, "
        f"pandas {pdf['rss_after_imports_mb']:.0f} MB)."
    )
    return bench.finish()


if __name__ == "__main__":
    sys.exit(main())
