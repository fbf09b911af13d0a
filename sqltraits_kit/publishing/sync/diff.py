"""The diff against the published state, computed in the warehouse, and the rows to send.

A full outer join of the resolved source with the latest state row per identifier sorts every
profile into one category:

- **new**: in the source, not published (never, or set to null since);
- **changed**: in both, and some trait differs — null-safe (``IS NOT DISTINCT FROM``); a numeric
  trait with a tolerance counts as changed only when ``|current - published| >= tolerance``
  (the trait set's "smaller changes are not re-sent"; compared with the *acknowledged* value,
  so slow drift still gets sent once it adds up);
- **removed**: published, no longer in the source;
- **unchanged**: the rest.

The rows to send (new, changed, and removed unless ``on_remove = "keep"``) are written to a
numbered scratch table and read back in fixed ranges of that number, each page fully fetched:
memory stays bounded by one page whatever the table's size, and no result iterator stays open
while the state is being appended to on the same connection (ibis #9444).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqltraits_kit.publishing.sync.state import REMOVED, SEQ

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pyarrow as pa

    from sqltraits_kit.publishing.sync.source import SyncSource
    from sqltraits_kit.warehouse import Warehouse

UNCHANGED, NEW, CHANGED, REMOVED_CAT = 0, 1, 2, 3
CATEGORY = {UNCHANGED: "unchanged", NEW: "new", CHANGED: "changed", REMOVED_CAT: "removed"}
#: Float noise must not turn "moved by exactly the tolerance" into "moved by less".
_TOLERANCE_SLACK = 1e-9
#: Engines whose scans skip row ranges by min/max metadata without an index.
_ZONE_MAPS = frozenset({"duckdb"})


def trait_alias(i: int) -> str:
    return f"_c{i}"


def _differs(cur: ir.Value, pub: ir.Value, tolerance: float) -> ir.BooleanValue:
    import ibis

    same = cur.identical_to(pub)
    dtype = cur.type()
    if tolerance > 0 and dtype.is_numeric() and not dtype.is_boolean():
        moved = (cur - pub).abs() >= tolerance * (1 - _TOLERANCE_SLACK)
        return ibis.ifelse(cur.isnull() | pub.isnull(), ~same, moved)
    return ~same


def diff_table(src: SyncSource, latest: ir.Table | None) -> ir.Table:
    """``_id``, ``_cat`` (see :data:`CATEGORY`), ``_pseq`` (the state row's sequence number, 0
    if none) and ``_c0..`` (the source's trait values, null for removed profiles).

    Profiles that are tombstoned in the state and absent from the source get ``_cat = -1``.
    """
    import ibis

    s = src.table
    values = {trait_alias(i): s[t] for i, t in enumerate(src.traits)}
    if latest is None:
        return s.select(
            _id=s[src.id_column],
            _cat=ibis.literal(NEW, "int8"),
            _pseq=ibis.literal(0, "int64"),
            **values,
        )
    pid = latest.columns[0]
    pub = latest.select(
        _pk=latest[pid],
        _pgone=latest[REMOVED],
        _pseq=latest[SEQ],
        **{f"_p{i}": latest[t] for i, t in enumerate(src.traits)},
    )
    cur = s.select(_k=s[src.id_column], **values)
    j = cur.join(pub, cur["_k"] == pub["_pk"], how="outer")
    in_source = j["_k"].notnull()
    published = j["_pk"].notnull() & ~j["_pgone"].fill_null(False)
    differs = ibis.or_(
        *(
            _differs(j[trait_alias(i)], j[f"_p{i}"], src.tolerance.get(t, 0.0))
            for i, t in enumerate(src.traits)
        )
    )
    category = ibis.cases(
        (in_source & ~published, NEW),
        (~in_source & published, REMOVED_CAT),
        (in_source & differs, CHANGED),
        (in_source, UNCHANGED),
        else_=-1,
    )
    return j.select(
        _id=ibis.coalesce(j["_k"], j["_pk"]),
        _cat=category.cast("int8"),
        _pseq=j["_pseq"].fill_null(0),
        **{trait_alias(i): j[trait_alias(i)] for i in range(len(src.traits))},
    )


def send_categories(on_remove: str) -> list[int]:
    return [NEW, CHANGED, *([REMOVED_CAT] if on_remove == "null" else [])]


def to_send(diff: ir.Table, on_remove: str, *, only: ir.Column | None = None) -> ir.Table:
    """The rows a run sends; ``only`` (a column of identifiers as strings) narrows them."""
    rows = diff.filter(diff["_cat"].isin(send_categories(on_remove)))
    if only is not None:
        rows = rows.filter(rows["_id"].cast("string").isin(only))
    return rows


def counts(diff: ir.Table) -> dict[str, int]:
    """Profiles per category (one aggregate in the warehouse)."""
    import ibis

    rows = diff.group_by("_cat").aggregate(n=ibis._.count()).to_pyarrow().to_pylist()
    out = dict.fromkeys(CATEGORY.values(), 0)
    for row in rows:
        name = CATEGORY.get(int(row["_cat"]))
        if name is not None:
            out[name] = int(row["n"])
    out["rows"] = out["new"] + out["changed"] + out["unchanged"]
    return out


def _index(wh: Warehouse, name: str) -> None:
    """An index on the row number where range scans would otherwise read the whole table."""
    import contextlib

    import sqlglot as sg
    import sqlglot.expressions as sge

    if wh.backend in _ZONE_MAPS:
        return
    statement = sge.Create(
        kind="INDEX",
        this=sge.Index(
            this=sg.to_identifier(f"{name}_row"[:63], quoted=True),
            table=sg.table(name, quoted=True),
            params=sge.IndexParameters(columns=[sge.Ordered(this=sg.column("_row", quoted=True))]),
        ),
    )
    with contextlib.suppress(Exception):  # an engine without indexes just scans
        result = wh.con.raw_sql(statement.sql(dialect=wh.con.dialect))
        close = getattr(result, "close", None)
        if close is not None and result is not getattr(wh.con, "con", None):
            close()


def materialise(wh: Warehouse, name: str, rows: ir.Table) -> int:
    """Write ``rows`` numbered ``_row`` = 0..n-1 (by identifier) to ``name``; returns n."""
    import ibis

    numbered = rows.mutate(_row=ibis.row_number().over(order_by=rows["_id"]))
    table = wh.con.create_table(name, numbered, overwrite=True)
    _index(wh, name)
    return int(table.count().execute())


def read_page(wh: Warehouse, name: str, page: int, size: int) -> pa.Table:
    """Rows ``page * size`` to ``(page + 1) * size - 1``, in row-number order, fully fetched."""
    table = wh.con.table(name)
    start = page * size
    rows = table.filter((table["_row"] >= start) & (table["_row"] < start + size))
    return rows.order_by("_row").to_pyarrow()


def drop(wh: Warehouse, name: str) -> None:
    import contextlib

    with contextlib.suppress(Exception):
        wh.con.drop_table(name, force=True)


def describe_counts(c: dict[str, Any]) -> str:
    return ", ".join(f"{c[k]:,} {k}" for k in ("new", "changed", "removed", "unchanged"))
