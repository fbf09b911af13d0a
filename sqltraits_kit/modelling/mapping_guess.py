"""Guess a :class:`~sqltraits_kit.modelling.features.TableMapping` from what a warehouse holds.

A data scientist's own warehouse rarely has the demo's names (``users``, ``order_completed``):
the Train page and ``sqltraits train`` start from this guess, show its reasons, and ask. The guess
reads only schemas and a few counts computed in the warehouse (row counts, distinct ids, how many
of a sample of ids are found among the profiles); it never pulls a table.

How a table earns its role:

* **orders** — has an id-like column, a timestamp and a numeric revenue-like column, with more
  than one row per id on average (a log, not a list); names such as ``orders``/``purchases``
  help, and so do revenue-like column names (``revenue``, ``amount``, ``dollars``, ...).
* **profiles** — one row per id (the id column is unique), and the orders' ids are found in it;
  its creation time is a timestamp whose name says so (``created_at``, ``signup``, ``first_*``).
* **activity** — other logs keyed by the same ids with a timestamp (``tracks``/``pages`` in
  Segment's schema); a ``tracks``-like table also names its ``event``.

When no separate profiles table fits, the orders table is its own profiles table (a profile then
exists from its first order).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.modelling.features import TableMapping
from sqltraits_kit.warehouse.kit_tables import is_history_table, is_kit_table

if TYPE_CHECKING:
    from sqltraits_kit.warehouse import Warehouse

__all__ = ["MappingGuess", "guess_mapping"]

_ID_NAME = re.compile(r"(^id$|_id$|^id_|_no$|_num(ber)?$|_key$|^(user|customer|client|member)s?$)")
_ID_HINT = re.compile(r"(user|customer|client|member|account|profile|person|buyer|shopper)")
_TIME_HINT = re.compile(r"(timestamp|_at$|^ts$|time|date|day)")
_CREATED_HINT = re.compile(r"(created|signup|sign_up|registered|joined|first|since|start)")
_REVENUE_HINT = re.compile(
    r"(revenue|amount|total|price|value|dollars?|spend|sales|paid|gmv|net|gross)"
)
_ORDERS_TABLE = re.compile(r"(order|purchase|transaction|sale|invoice|payment|checkout)")
_PROFILES_TABLE = re.compile(r"(user|customer|client|member|profile|account|people|person)")
_TRACKS_TABLE = re.compile(r"(^tracks$|events?$)")
_PAGES_TABLE = re.compile(r"(^pages$|page_?views?|visits|sessions)")

_SAMPLE_IDS = 2_000


@dataclass(frozen=True)
class MappingGuess:
    """A proposed mapping with a reason for every choice, or what is missing."""

    mapping: TableMapping | None
    reasons: dict[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return self.mapping is not None and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "mapping": self.mapping.to_dict() if self.mapping else None,
            "reasons": dict(self.reasons),
            "problems": list(self.problems),
        }


@dataclass
class _Table:
    name: str
    rows: int
    ids: list[str]  # id-like columns, best first
    times: list[str]  # timestamp/date columns, best first
    numbers: list[str]  # revenue-like numeric columns, best first
    strings: list[str]
    distinct: dict[str, int] = field(default_factory=dict)


def _score_name(name: str, *patterns: re.Pattern[str]) -> int:
    return sum(1 for p in patterns if p.search(name.lower()))


def _describe(wh: Warehouse, name: str) -> _Table | None:
    schema = wh.table(name).schema()
    ids, times, numbers, strings = [], [], [], []
    for col, dtype in schema.items():
        low = col.lower()
        if dtype.is_timestamp() or dtype.is_date():
            times.append(col)
        elif dtype.is_string():
            strings.append(col)
            if _ID_NAME.search(low) or _ID_HINT.search(low):
                ids.append(col)
        elif dtype.is_integer():
            if _ID_NAME.search(low) or _ID_HINT.search(low):
                ids.append(col)
            else:
                numbers.append(col)
        elif dtype.is_numeric():
            numbers.append(col)
    if not ids:
        return None
    ids.sort(key=lambda c: (-_score_name(c, _ID_HINT), c != "id", c))
    times.sort(key=lambda c: (-_score_name(c, _TIME_HINT), c))
    numbers.sort(key=lambda c: (-_score_name(c, _REVENUE_HINT), c))
    return _Table(name, 0, ids, times, numbers, strings)


def _counts(wh: Warehouse, t: _Table) -> None:
    """Row count and distinct values of each id-like column, in one warehouse query."""
    table = wh.table(t.name)
    aggs = {"__rows": table.count()}
    for i, col in enumerate(t.ids):
        aggs[f"__d{i}"] = table[col].nunique()
    row = table.aggregate(**aggs).to_pyarrow().to_pylist()[0]
    t.rows = int(row["__rows"])
    t.distinct = {col: int(row[f"__d{i}"] or 0) for i, col in enumerate(t.ids)}


def _found_share(wh: Warehouse, log: _Table, col: str, profiles: _Table, pid: str) -> float:
    """Share of a sample of distinct ``log.col`` values that are ids in ``profiles.pid``.

    Compared as strings so that an integer id column matches a text one holding the same ids.
    """
    src = wh.table(log.name)
    dst = wh.table(profiles.name)
    sample = (
        src.filter(src[col].notnull())
        .select(v=src[col].cast("string"))
        .distinct()
        .limit(_SAMPLE_IDS)
    )
    keys = dst.select(k=dst[pid].cast("string")).distinct()
    found = sample.semi_join(keys, sample.v == keys.k)
    try:
        hits, total = int(found.count().execute()), int(sample.count().execute())
    except Exception:  # a backend that cannot cast or compare these types: no overlap
        return 0.0
    return hits / total if total else 0.0


def _pick_orders(tables: Sequence[_Table]) -> tuple[_Table, str, str, str, str] | None:
    best: tuple[float, _Table, str, str, str, str] | None = None
    for t in tables:
        if not t.times or not t.numbers or t.rows == 0:
            continue
        for col in t.ids:
            distinct = t.distinct.get(col, 0)
            if distinct == 0 or distinct >= t.rows:
                continue  # unique per row: the row's own key, not the customer's
            per_id = t.rows / distinct
            score = (
                2.0 * _score_name(t.name, _ORDERS_TABLE)
                + 1.5 * _score_name(t.numbers[0], _REVENUE_HINT)
                + 1.0 * _score_name(col, _ID_HINT)
                + min(per_id, 5.0) / 5.0
            )
            why = (
                f"{t.rows:,} rows for {distinct:,} distinct {col} ({per_id:.1f} per id), "
                f"timestamp column {t.times[0]}, numeric {t.numbers[0]}"
            )
            if best is None or score > best[0]:
                best = (score, t, col, t.times[0], t.numbers[0], why)
    return None if best is None else best[1:]  # type: ignore[return-value]


def _pick_profiles(
    wh: Warehouse, tables: Sequence[_Table], orders: _Table, order_id: str
) -> tuple[_Table, str, float] | None:
    best: tuple[float, _Table, str, float] | None = None
    for t in tables:
        if t.name == orders.name or t.rows == 0:
            continue
        for col in t.ids:
            if t.distinct.get(col) != t.rows:
                continue  # a profiles table has one row per id
            share = _found_share(wh, orders, order_id, t, col)
            if share < 0.5:
                continue
            score = (
                4.0 * share
                + 1.0 * _score_name(t.name, _PROFILES_TABLE)
                + (1.0 if col == order_id or col == "id" else 0.0)
            )
            if best is None or score > best[0]:
                best = (score, t, col, share)
    return None if best is None else best[1:]  # type: ignore[return-value]


def _pick_activity(
    wh: Warehouse, tables: Sequence[_Table], used: set[str], profiles: _Table, pid: str
) -> dict[str, tuple[_Table, str, str]]:
    out: dict[str, tuple[_Table, str, str]] = {}
    for role, pattern in (("tracks", _TRACKS_TABLE), ("pages", _PAGES_TABLE)):
        for t in tables:
            if t.name in used or not t.times or not pattern.search(t.name.lower()):
                continue
            col = next(
                (c for c in t.ids if _found_share(wh, t, c, profiles, pid) >= 0.5),
                None,
            )
            if col is not None:
                out[role] = (t, col, t.times[0])
                used.add(t.name)
                break
    return out


def guess_mapping(wh: Warehouse, *, tables: Sequence[str] | None = None) -> MappingGuess:
    """Propose a table mapping for ``wh`` from names, types and a few counts.

    ``tables`` limits the candidates (default: every table except the kit's own). The result
    carries a reason per field; ``problems`` says what could not be found. Check the guess with
    :meth:`TableMapping.validate` before training on it.
    """
    names = list(tables) if tables is not None else wh.tables()
    names = [n for n in names if not is_kit_table(n) and not is_history_table(n)]
    described = [d for n in names if (d := _describe(wh, n)) is not None]
    for d in described:
        _counts(wh, d)
    picked = _pick_orders(described)
    if picked is None:
        return MappingGuess(
            None,
            problems=(
                "no orders table found: a table with a customer id repeated over rows, a "
                "timestamp and a numeric revenue column",
            ),
        )
    orders, order_id, order_ts, revenue, why_orders = picked
    reasons = {
        "orders_table": f"{orders.name}: {why_orders}",
        "order_profile_id": f"{order_id}: repeats over rows (a customer, not an order key)",
        "order_timestamp": f"{order_ts}: the order table's timestamp column",
        "order_revenue": f"{revenue}: numeric"
        + (", named like revenue" if _REVENUE_HINT.search(revenue.lower()) else ""),
    }
    prof = _pick_profiles(wh, described, orders, order_id)
    if prof is None:
        profiles, pid, created = orders, order_id, None
        reasons["profiles_table"] = (
            f"{orders.name}: no table with one row per {order_id} holds the orders' ids, so a "
            "profile exists from its first order"
        )
    else:
        profiles, pid, share = prof
        created = next((c for c in profiles.times if _CREATED_HINT.search(c.lower())), None)
        created = created or (profiles.times[0] if len(profiles.times) == 1 else None)
        reasons["profiles_table"] = (
            f"{profiles.name}: {pid} is unique over {profiles.rows:,} rows and "
            f"{share:.0%} of a sample of {orders.name}.{order_id} is found in it"
        )
    reasons["profile_id"] = f"{pid}: the profiles table's unique id"
    reasons["profile_created_at"] = (
        f"{created}: a timestamp named like a creation time"
        if created
        else "none: no creation-time column, a profile exists from its first event"
    )
    activity = _pick_activity(wh, described, {orders.name, profiles.name}, profiles, pid)
    values: dict[str, Any] = {
        "profiles_table": profiles.name,
        "profile_id": pid,
        "profile_created_at": created,
        "orders_table": orders.name,
        "order_profile_id": order_id,
        "order_timestamp": order_ts,
        "order_revenue": revenue,
        "tracks_table": None,
        "pages_table": None,
    }
    if "tracks" in activity:
        t, col, ts = activity["tracks"]
        event = next((c for c in t.strings if c.lower() in ("event", "event_name", "name")), None)
        values |= {
            "tracks_table": t.name,
            "track_profile_id": col,
            "track_timestamp": ts,
            "track_event": event,
        }
        reasons["tracks_table"] = (
            f"{t.name}: an event log keyed by {col} with timestamp column {ts}"
        )
    else:
        reasons["tracks_table"] = "none: no event log keyed by the profiles' ids"
    if "pages" in activity:
        t, col, ts = activity["pages"]
        values |= {"pages_table": t.name, "page_profile_id": col, "page_timestamp": ts}
        reasons["pages_table"] = (
            f"{t.name}: a page/visit log keyed by {col} with timestamp column {ts}"
        )
    else:
        reasons["pages_table"] = "none: no page or visit log keyed by the profiles' ids"
    try:
        mapping = TableMapping(**values)
    except ConfigError as exc:  # pragma: no cover - every value above is a non-empty name
        return MappingGuess(None, reasons, (str(exc),))
    return MappingGuess(mapping, reasons)
