"""The shape and type rules: traits present, at most 25 columns and 25M rows, records under
16 KB; only flat strings, numbers, booleans and timestamps, with a time zone, and finite."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqltraits_kit.traits.contract.measure import type_class
from sqltraits_kit.traits.contract.report import RuleResult, plural, result, sample_rows

if TYPE_CHECKING:
    from sqltraits_kit.traits.contract.measure import Measured

__all__ = ["shape_rules", "type_rules"]


def shape_rules(
    m: Measured, /, *, max_columns: int, max_rows: int, max_record_bytes: int
) -> dict[str, RuleResult]:
    """``has_traits``, ``max_columns``, ``has_rows``, ``max_rows`` and ``record_size``."""
    traits, columns, rows = m.traits, m.columns, m.rows
    out: dict[str, RuleResult] = {}
    out["has_traits"] = result(
        "has_traits",
        bool(traits),
        f"{plural(len(traits), 'trait column')}"
        if traits
        else "no trait columns: Segment needs at least one besides the identifier",
        count=0 if traits else 1,
    )
    out["max_columns"] = result(
        "max_columns",
        len(columns) <= max_columns,
        f"{len(columns)} columns (at most {max_columns})"
        if len(columns) <= max_columns
        else f"{len(columns)} columns; Segment SQL Traits take at most {max_columns} "
        f"(drop {len(columns) - max_columns})",
        count=max(0, len(columns) - max_columns),
    )
    out["has_rows"] = result(
        "has_rows",
        rows > 0,
        f"{rows:,} rows"
        if rows
        else "the result is empty: publishing it would set the traits of every profile "
        "published before to null (Segment's on-remove rule)",
        count=0 if rows else 1,
    )
    out["max_rows"] = result(
        "max_rows",
        rows <= max_rows,
        f"{rows:,} rows (at most {max_rows:,})"
        if rows <= max_rows
        else f"{rows:,} rows; Segment SQL Traits take at most {max_rows:,}",
        count=max(0, rows - max_rows),
    )
    out["record_size"] = _record_size(m, max_record_bytes)
    return out


def _record_size(m: Measured, max_record_bytes: int) -> RuleResult:
    import ibis

    n, biggest = m.counts["oversize"], m.counts["max_size"]
    sample = ()
    if n:
        big = m.table.mutate(_size=m.size).filter(ibis._["_size"] >= max_record_bytes)
        order = [ibis.desc("_size"), m.id_column] if m.has_id else [ibis.desc("_size")]
        keep = [m.id_column] if m.has_id else []
        sample = sample_rows(
            big.order_by(order).select(*keep, estimated_bytes=ibis._["_size"]).limit(m.sample_size)
        )
    return result(
        "record_size",
        n == 0,
        f"largest record estimated at {biggest:,} bytes (limit {max_record_bytes:,})"
        if n == 0
        else f"{plural(n, 'record')} of about {max_record_bytes:,} bytes or more "
        f"(largest estimated at {biggest:,}); Segment discards them",
        count=n,
        sample=sample,
    )


def type_rules(m: Measured, /) -> dict[str, RuleResult]:
    """The type rules: no nested or unsupported types, zoned timestamps, finite numbers."""
    schema, columns = m.schema, m.columns
    classes = {c: type_class(schema[c]) for c in columns}
    out: dict[str, RuleResult] = {}
    nested = {c: 1 for c, k in classes.items() if k == "nested"}
    out["no_nested_types"] = result(
        "no_nested_types",
        not nested,
        "no arrays, structs, maps or JSON"
        if not nested
        else "; ".join(f"{c} is {schema[c]}" for c in nested)
        + ": SQL Traits take no arrays or objects (send a comma-separated string instead)",
        count=len(nested),
        columns=nested,
    )
    bad = {c: 1 for c, k in classes.items() if k == "unsupported"}
    out["supported_types"] = result(
        "supported_types",
        not bad,
        "every column is a string, number, boolean or timestamp"
        if not bad
        else "; ".join(f"{c} is {schema[c]}" for c in bad)
        + ": Segment accepts strings, numbers, booleans and timestamps (cast it)",
        count=len(bad),
        columns=bad,
    )
    naive = {
        c: 1
        for c in columns
        if (schema[c].is_timestamp() and schema[c].timezone is None) or schema[c].is_date()
    }
    out["timestamps_have_timezone"] = result(
        "timestamps_have_timezone",
        not naive,
        "every timestamp has a time zone"
        if not naive
        else f"{', '.join(naive)}: no time zone; they will be sent as UTC with a 'Z' "
        "(store timestamptz / TIMESTAMP WITH TIME ZONE if they are local times)",
        count=len(naive),
        columns=naive,
    )
    out["finite_numbers"] = _finite_numbers(m)
    return out


def _finite_numbers(m: Measured) -> RuleResult:
    import ibis

    counts = {c: m.counts[f"nonfinite_{i}"] for i, c in enumerate(m.floats)}
    bad = {c: n for c, n in counts.items() if n}
    sample = ()
    if bad:
        any_bad = ibis.or_(*(m.nonfinite(c) for c in bad))
        keep = [m.id_column] if m.has_id else []
        rows = m.ordered(m.table.filter(any_bad)).select(*keep, *bad)
        sample = sample_rows(rows.limit(m.sample_size))
    return result(
        "finite_numbers",
        not bad,
        "no NaN or infinite values"
        if not bad
        else "NaN or ±infinity in "
        + ", ".join(f"{c} ({plural(n, 'row')})" for c, n in bad.items())
        + ": not JSON; they would be published as null, erasing the trait",
        count=sum(bad.values()),
        sample=sample,
        columns=bad,
    )
