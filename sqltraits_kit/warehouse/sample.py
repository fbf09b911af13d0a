"""A deterministic demo warehouse shaped like Segment's warehouse destination.

The data follow a documented generative process (see ``sample_data/README.md``) so that models
trained on it can be judged against the truth:

* Orders follow BG/NBD: each customer's weekly purchase rate ``lambda ~ Gamma(r, rate=alpha)``;
  after every repeat purchase the customer drops out with probability ``p ~ Beta(a, b)``.
* Order values follow Gamma-Gamma: ``nu ~ Gamma(q, rate=v)``, each value
  ``~ Gamma(p_spend, rate=nu)``.
* Web activity (``pages``, ``tracks``) is a Poisson process that fades in the weeks before the
  customer drops out and stops a few weeks after, so it carries churn signal.

Per-customer latent values come from NumPy (vectorised, seeded); every event table is then built
inside DuckDB from hash-based uniforms, so the build is deterministic for a seed, runs on all cores
and never loops in Python.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from sqltraits_kit.errors import ConfigError

__all__ = ["SAMPLE_TODAY", "SampleParameters", "SampleReport", "build_sample"]

#: The fixed "today" of the sample: its history ends here (UTC).
SAMPLE_TODAY = datetime(2026, 11, 1)
HISTORY_DAYS = 730


@dataclass(frozen=True, kw_only=True)
class SampleParameters:
    """Population parameters of the generative process (time unit: weeks)."""

    r: float = 0.75  # BG/NBD: purchase-rate shape
    alpha: float = 6.0  # BG/NBD: purchase-rate rate (weeks)
    a: float = 0.9  # BG/NBD: dropout-probability beta a
    b: float = 3.5  # BG/NBD: dropout-probability beta b
    p: float = 6.0  # Gamma-Gamma: shape of each order value (an integer: built from exponentials)
    q: float = 3.5  # Gamma-Gamma: shape of the per-customer rate nu
    v: float = 30.0  # Gamma-Gamma: rate of nu
    visits_per_purchase: float = 3.0  # mean web visits per expected purchase while active
    fade_weeks: float = 6.0  # web activity fades over this many weeks before dropout
    linger_weeks: float = 8.0  # a trickle of visits continues this long after dropout
    users_per_account: int = 10


@dataclass(frozen=True)
class SampleReport:
    path: Path
    customers: int
    seed: int
    row_counts: dict[str, int]
    seconds: float


_COUNTRIES = ["US", "US", "US", "GB", "DE", "FR", "CA", "BR", "IN", "AU", "NL", "ES"]
_PLANS = ["free", "free", "starter", "starter", "pro", "enterprise"]
_INDUSTRIES = ["Retail", "Software", "Finance", "Healthcare", "Education", "Media", "Travel"]
_FIRST = ["Ada", "Alan", "Grace", "Linus", "Mary", "Ken", "Barbara", "Dennis", "Frances", "John"]
_LAST = ["Lovelace", "Turing", "Hopper", "Torvalds", "Shaw", "Thompson", "Liskov", "Ritchie"]
_PATHS = ["/", "/pricing", "/products", "/products/item", "/cart", "/blog", "/account", "/help"]
_EVENTS = ["Product Viewed", "Product Added", "Products Searched", "Signed In", "Cart Viewed"]


def _sql_list(values: list[str]) -> str:
    # Constant literals of this module only (never user input).
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


#: Customers whose latent values are drawn (and held) at once: memory stays at one chunk.
LATENT_CHUNK = 1_000_000


def _latent_chunks(n: int, seed: int, params: SampleParameters) -> Iterator[pa.Table]:
    """The latent values of customers 1..n, a chunk of :data:`LATENT_CHUNK` at a time.

    The first chunk draws from ``default_rng(seed)`` exactly as a single draw did, so a sample
    of up to a million customers is the same as before chunks; chunk k > 0 has its own stream,
    ``default_rng([seed, k])``.
    """
    for start in range(0, n, LATENT_CHUNK):
        k = start // LATENT_CHUNK
        rng = np.random.default_rng(seed if k == 0 else [seed, k])
        yield _latent(min(LATENT_CHUNK, n - start), rng, params, first_uid=start + 1)


def _latent(
    n: int, rng: np.random.Generator, params: SampleParameters, *, first_uid: int = 1
) -> pa.Table:
    """Per-customer latent values, drawn with NumPy (vectorised, seeded)."""
    created_days = rng.uniform(0.0, HISTORY_DAYS - 1.0, n)
    # The first order follows sign-up within three days, and never after today.
    first_delay_days = (
        rng.uniform(0.0, 1.0, n) * np.minimum(3.0, HISTORY_DAYS - created_days) * 0.99
    )
    lam = np.maximum(rng.gamma(params.r, 1.0 / params.alpha, n), 1e-9)
    drop_p = rng.beta(params.a, params.b, n)
    # Repeat purchases made before dropping out: geometric on {1, 2, ...}.
    n_repeat = rng.geometric(drop_p).astype(np.int64)
    nu = rng.gamma(params.q, 1.0 / params.v, n)
    web_mult = rng.gamma(4.0, 0.25, n)
    # Observation window from the first purchase to "today", in weeks.
    t_obs = (HISTORY_DAYS - created_days - first_delay_days) / 7.0
    mean = lam * t_obs
    cap = np.minimum(n_repeat, np.ceil(mean + 6.0 * np.sqrt(mean) + 6.0)).astype(np.int64)
    # Dropout time beyond the generated candidates: the rest of the gamma sum, drawn here.
    rest = np.maximum(n_repeat - cap, 0)
    extra_tau = np.where(rest > 0, rng.gamma(np.maximum(rest, 1), 1.0 / lam), 0.0)
    return pa.table(
        {
            "uid": np.arange(first_uid, first_uid + n, dtype=np.int64),
            "created_days": created_days,
            "first_delay_days": first_delay_days,
            "lam": lam,
            "drop_p": drop_p,
            "n_repeat": n_repeat,
            "nu": nu,
            "web_rate": lam * params.visits_per_purchase * web_mult,
            "t_obs": t_obs,
            "cap": cap,
            "extra_tau": extra_tau,
        }
    )


def _pick(values: list[str], seed: int, *parts: str) -> str:
    """SQL picking one of ``values`` by a hash of (seed, parts)."""
    args = ", ".join([str(int(seed)), *parts])
    return f"{_sql_list(values)}[CAST(1 + hash(hash({args})) % {len(values)} AS BIGINT)]"


def _u(seed: int, *parts: str) -> str:
    """SQL for a uniform in [0, 1) derived from a hash of (seed, parts): deterministic, parallel."""
    args = ", ".join([str(int(seed)), *parts])
    # DuckDB combines multi-argument hashes weakly: uniforms that differ only in the last
    # argument came out correlated (|rho| up to 0.998). Hashing the combined hash again mixes it.
    return f"((hash(hash({args})) >> 11)::DOUBLE / 9007199254740992.0)"


def _exp(seed: int, *parts: str) -> str:
    """SQL for a standard exponential draw."""
    return f"(-ln(1.0 - {_u(seed, *parts)}))"


def _statements(seed: int, params: SampleParameters, n_accounts: int) -> list[tuple[str, str]]:
    """The sample's tables as (name, CREATE TABLE ... AS SELECT) pairs, run by DuckDB in order.

    Longer than ~80 lines on purpose: it is one SQL statement per table of the generative
    process (customers, accounts, orders, tracks, pages, truth), each a page of SQL that reads
    best in one place; splitting them would scatter the shared seed and draw helpers.
    """
    today = SAMPLE_TODAY.strftime("%Y-%m-%d %H:%M:%S")
    start = f"(TIMESTAMP '{today}' - INTERVAL {HISTORY_DAYS} DAY)"
    week_us = 7 * 86400 * 1_000_000
    p_shape = int(params.p)
    value_draw = " + ".join(_exp(seed, "o.uid", "o.k", str(100 + i)) for i in range(p_shape))
    s = seed
    return [
        (
            "customers",
            f"""
            CREATE TEMP TABLE _cust AS
            SELECT l.*,
                   {start} + to_microseconds(CAST(created_days * 86400e6 AS BIGINT)) AS created_at,
                   {start} + to_microseconds(CAST((created_days + first_delay_days) * 86400e6
                       AS BIGINT)) AS first_order_at,
                   'u' || lpad(uid::VARCHAR, 8, '0') AS user_id
            FROM _latent l
            """,
        ),
        (
            "order times",
            f"""
            CREATE TEMP TABLE _orders_raw AS
            WITH cand AS (
                SELECT uid, unnest(range(0, cap + 1)) AS k, lam, t_obs FROM _cust
            ), timed AS (
                SELECT uid AS uid, k, t_obs,
                       sum(CASE WHEN k = 0 THEN 0.0 ELSE {_exp(s, "uid", "k", "1")} / lam END)
                           OVER (PARTITION BY uid ORDER BY k) AS t_w
                FROM cand
            )
            SELECT uid, k, t_w FROM timed
            """,
        ),
        (
            "truth",
            """
            CREATE TEMP TABLE _truth AS
            SELECT c.uid, c.user_id,
                   c.created_at, c.first_order_at, c.lam, c.drop_p, c.n_repeat, c.nu, c.web_rate,
                   c.t_obs,
                   -- the dropout happens at the n-th repeat purchase; beyond the generated
                   -- candidates the rest of that gamma sum was drawn with the latent values
                   r.last_w + c.extra_tau AS tau_w
            FROM _cust c
            JOIN (SELECT uid, max(t_w) AS last_w FROM _orders_raw GROUP BY uid) r USING (uid)
            """,
        ),
        (
            "order_completed",
            f"""
            CREATE TABLE order_completed AS
            SELECT 'ord_' || lpad(o.uid::VARCHAR, 8, '0') || '_' || o.k::VARCHAR AS id,
                   t.user_id,
                   t.first_order_at + to_microseconds(CAST(o.t_w * {week_us} AS BIGINT))
                       AS "timestamp",
                   round(({value_draw}) / t.nu, 2) AS revenue,
                   '[' || list_aggr(list_transform(
                        range(1 + CAST(3 * {_u(s, "o.uid", "o.k", "7")} AS BIGINT)),
                        i -> '{{"product_id":"p'
                             || (1 + hash(hash({s}, o.uid, o.k, i)) % 500)::VARCHAR
                             || '"}}'), 'string_agg', ',') || ']' AS products,
                   'USD' AS currency
            FROM _orders_raw o JOIN _truth t USING (uid)
            WHERE o.t_w <= t.t_obs
            ORDER BY o.uid, o.k
            """,
        ),
        (
            "visits",
            f"""
            CREATE TEMP TABLE _visits AS
            WITH lim AS (
                SELECT uid, web_rate, created_at, tau_w,
                       least(t_obs + epoch(first_order_at - created_at) / (7 * 86400.0),
                             tau_w + {params.linger_weeks}) AS end_w,
                       epoch(first_order_at - created_at) / (7 * 86400.0) AS first_w
                FROM _truth
            ), cand AS (
                SELECT uid, web_rate, created_at, tau_w + first_w AS drop_w, end_w,
                       unnest(range(1, CAST(ceil(web_rate * end_w + 6 * sqrt(web_rate * end_w) + 6)
                                             AS BIGINT) + 1)) AS k
                FROM lim
            ), timed AS (
                SELECT uid, k, created_at, drop_w, end_w,
                       sum({_exp(s, "uid", "k", "2")} / web_rate)
                           OVER (PARTITION BY uid ORDER BY k) AS t_w
                FROM cand
            )
            SELECT uid, k, created_at + to_microseconds(CAST(t_w * {week_us} AS BIGINT)) AS ts
            FROM timed
            WHERE t_w <= end_w
              AND {_u(s, "uid", "k", "3")} < CASE
                    WHEN t_w >= drop_w THEN 0.05
                    WHEN t_w >= drop_w - {params.fade_weeks}
                        THEN 0.15 + 0.85 * (drop_w - t_w) / {params.fade_weeks}
                    ELSE 1.0 END
            """,
        ),
        (
            "pages (ordering)",
            "CREATE TEMP TABLE _visits_sorted AS SELECT uid, k, ts FROM _visits ORDER BY uid, k",
        ),
        (
            "pages",
            f"""
            CREATE TABLE pages AS
            SELECT 'pg_' || lpad(uid::VARCHAR, 8, '0') || '_' || k::VARCHAR AS id,
                   'u' || lpad(uid::VARCHAR, 8, '0') AS user_id,
                   {_pick(_PATHS, s, "uid", "k", "4")} AS path,
                   ts AS "timestamp"
            FROM _visits_sorted
            """,
        ),
        (
            "tracks (ordering)",
            f"""
            CREATE TEMP TABLE _tracks_sorted AS
            WITH ev AS (
                SELECT v.uid, v.k, v.ts, unnest(range(CAST(4 * {_u(s, "v.uid", "v.k", "5")}
                                                        AS BIGINT))) AS j
                FROM _visits v
                UNION ALL
                SELECT t.uid, -o.rn AS k, o."timestamp" AS ts, -1 AS j
                FROM (SELECT user_id, "timestamp",
                             row_number() OVER (PARTITION BY user_id ORDER BY "timestamp") AS rn
                      FROM order_completed) o
                JOIN _truth t ON t.user_id = o.user_id
            )
            SELECT uid, ts, k, j FROM ev ORDER BY uid, ts, k, j
            """,
        ),
        (
            "tracks",
            f"""
            CREATE TABLE tracks AS
            SELECT 'trk_' || lpad(uid::VARCHAR, 8, '0') || '_' || CASE WHEN j < 0
                       THEN 'o' || (-k)::VARCHAR ELSE k::VARCHAR || '_' || j::VARCHAR END AS id,
                   'u' || lpad(uid::VARCHAR, 8, '0') AS user_id,
                   CASE WHEN j < 0 THEN 'Order Completed'
                        ELSE {_pick(_EVENTS, s, "uid", "k", "j", "6")}
                   END AS event,
                   least(ts + to_microseconds(CAST(greatest(j, 0) * 45e6 AS BIGINT)),
                         TIMESTAMP '{today}' - INTERVAL 1 SECOND) AS "timestamp"
            FROM _tracks_sorted
            """,
        ),
        (
            "accounts",
            f"""
            CREATE TABLE accounts AS
            SELECT 'acc_' || lpad(i::VARCHAR, 6, '0') AS id,
                   'Company ' || i::VARCHAR AS name,
                   {_pick(_INDUSTRIES, s, "i", "10")} AS industry,
                   CAST(5 + floor(exp(8 * {_u(s, "i", "11")})) AS BIGINT) AS employees,
                   {_pick(_PLANS, s, "i", "12")} AS plan
            FROM range(1, {n_accounts + 1}) r(i)
            ORDER BY i
            """,
        ),
        (
            "users",
            f"""
            CREATE TABLE users AS
            SELECT t.user_id AS id,
                   'user' || t.uid::VARCHAR || '@example.com' AS email,
                   {_pick(_FIRST, s, "t.uid", "20")} || ' ' ||
                   {_pick(_LAST, s, "t.uid", "21")} AS name,
                   t.created_at,
                   {_pick(_PLANS, s, "t.uid", "22")} AS plan,
                   {_pick(_COUNTRIES, s, "t.uid", "23")} AS country,
                   'acc_' || lpad((1 + hash(hash({s}, t.uid, 24)) % {n_accounts})::VARCHAR, 6, '0')
                       AS account_id
            FROM _truth t
            ORDER BY t.uid
            """,
        ),
        (
            "sample_truth",
            f"""
            CREATE TABLE sample_truth AS
            SELECT user_id, lam AS purchase_rate, drop_p AS dropout_prob,
                   n_repeat AS repeat_purchases_before_dropout,
                   tau_w AS weeks_to_dropout,
                   -- NULL when the dropout lies beyond a century: a customer for good
                   CASE WHEN tau_w < 5200 THEN first_order_at
                        + to_microseconds(CAST(tau_w * {week_us} AS BIGINT)) END AS dropout_at,
                   tau_w > t_obs AS alive_at_end,
                   {params.p} AS spend_shape, nu AS spend_rate, {params.p} / nu AS mean_order_value,
                   web_rate AS visits_per_week
            FROM _truth
            ORDER BY uid
            """,
        ),
    ]


def build_sample(
    path: str | Path,
    *,
    customers: int = 50_000,
    seed: int = 7,
    params: SampleParameters | None = None,
    overwrite: bool = True,
    progress: Callable[[str, float], None] | None = None,
    memory_limit: str = "1GB",
) -> SampleReport:
    """Build the demo warehouse as a DuckDB file at ``path``.

    The file is written to a temporary name and renamed at the end, so a crash never leaves a
    half-built sample where the app expects a good one. DuckDB's memory is capped at
    ``memory_limit`` and spills to a temporary folder beside the file, so a large sample builds
    on a laptop (DuckDB's own default is 80% of the machine's memory).
    """
    import duckdb

    if customers < 1:
        raise ValueError(f"customers must be at least 1, got {customers}")
    params = params or SampleParameters()
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to rebuild it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".building")
    for stale in (tmp, Path(str(tmp) + ".wal")):
        stale.unlink(missing_ok=True)

    started = time.perf_counter()
    n_accounts = max(1, customers // params.users_per_account)
    steps = _statements(seed, params, n_accounts)
    report = progress or (lambda _msg, _frac: None)
    spill = path.with_name(path.name + ".spill")
    con = duckdb.connect(str(tmp))
    try:
        # Row order inside tables must not depend on thread scheduling.
        con.execute("SET preserve_insertion_order = true")
        try:
            con.execute("SET memory_limit = ?", [memory_limit])
        except duckdb.Error as exc:
            raise ConfigError(
                f"memory_limit must be a size such as '1GB' or '512MB', got {memory_limit!r}"
            ) from exc
        con.execute("SET temp_directory = ?", [str(spill)])
        # Progress goes through `progress`, not DuckDB's own bar; in Jupyter without ipywidgets
        # DuckDB refuses to touch the setting at all.
        with contextlib.suppress(duckdb.Error):
            con.execute("SET enable_progress_bar = false")
        report("drawing customer parameters", 0.0)
        for i, latent in enumerate(_latent_chunks(customers, seed, params)):
            con.register("_latent_arrow", latent)
            if i == 0:
                con.execute("CREATE TEMP TABLE _latent AS SELECT * FROM _latent_arrow")
            else:
                con.execute("INSERT INTO _latent SELECT * FROM _latent_arrow")
            con.unregister("_latent_arrow")
            del latent  # one chunk in Python memory at a time
        for i, (label, sql) in enumerate(steps, start=1):
            report(f"building {label}", i / (len(steps) + 1))
            con.execute(sql)
        con.execute(
            "CREATE TABLE sample_parameters (name VARCHAR, value DOUBLE)",
        )
        values = [(k, float(v)) for k, v in dataclasses.asdict(params).items()]
        values += [("seed", float(seed)), ("customers", float(customers))]
        con.executemany("INSERT INTO sample_parameters VALUES (?, ?)", values)
        counts = {
            name: con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]  # our own names
            for name in ("users", "accounts", "tracks", "pages", "order_completed", "sample_truth")
        }
        con.execute("CHECKPOINT")
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    if path.exists():
        path.unlink()
    Path(str(path) + ".wal").unlink(missing_ok=True)
    tmp.rename(path)
    report("done", 1.0)
    return SampleReport(path, customers, seed, counts, time.perf_counter() - started)
