"""The identifier rules: present, named as Segment names it, never null, empty or repeated, a
groupId of at most 500 characters, never both a user_id and an anonymous_id."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from sqltraits_kit.traits.contract.report import (
    MAX_GROUP_ID_CHARS,
    RuleResult,
    plural,
    result,
    sample_rows,
)
from sqltraits_kit.traits.traitset import ACCOUNT_IDENTIFIER, USER_IDENTIFIERS

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.traits.contract.measure import Measured

__all__ = ["identifier_rules"]


def identifier_rules(m: Measured, /) -> dict[str, RuleResult]:
    """Every identifier rule that applies to ``m`` (the others are left out of the report)."""
    out: dict[str, RuleResult] = {}
    allowed_ids = (ACCOUNT_IDENTIFIER,) if m.kind == "account" else USER_IDENTIFIERS
    if not m.has_id:
        wanted = m.id_column or " / ".join(allowed_ids)
        out["identifier_present"] = result(
            "identifier_present",
            False,
            f"no identifier column {wanted!r} in the table (columns: {', '.join(m.columns)})",
            count=1,
        )
    else:
        out.update(_present(m, allowed_ids))
    out["single_identifier"] = _single_identifier(m)
    return out


def _present(m: Measured, allowed_ids: tuple[str, ...]) -> dict[str, RuleResult]:
    id_column, table, schema, n_of = str(m.id_column), m.table, m.schema, m.counts
    idc = table[id_column]
    id_is_string = schema[id_column].is_string()
    out: dict[str, RuleResult] = {}
    out["identifier_present"] = result(
        "identifier_present", True, f"identifier column {id_column!r} ({schema[id_column]})"
    )
    good_name = id_column in allowed_ids
    out["identifier_name"] = result(
        "identifier_name",
        good_name,
        f"{id_column!r} is a Segment identifier"
        if good_name
        else f"{id_column!r} is not one of Segment's identifiers ({', '.join(allowed_ids)}); "
        "a trait set's resolve() sends it under the right name, a raw SQL Trait would fail",
        count=0 if good_name else 1,
    )
    n = n_of["id_nulls"]
    out["identifier_not_null"] = result(
        "identifier_not_null",
        n == 0,
        "no null identifiers"
        if n == 0
        else f"{plural(n, 'row')} with a null {id_column}: Segment cannot say whose traits "
        "they are and refuses the result",
        count=n,
        sample=sample_rows(table.filter(idc.isnull()).limit(m.sample_size)) if n else (),
    )
    n = n_of.get("id_empty", 0)
    blank = m.ordered(table.filter(idc.strip() == "")) if n else None
    out["identifier_not_empty"] = result(
        "identifier_not_empty",
        n == 0,
        ("no empty identifiers" if id_is_string else f"{schema[id_column]} ids are never empty")
        if n == 0
        else f"{plural(n, 'row')} with an empty or blank {id_column}",
        count=n,
        sample=sample_rows(blank.limit(m.sample_size)) if blank is not None else (),
    )
    out["identifier_unique"] = _duplicates(
        table, id_column, n_of, rows=m.rows, sample_size=m.sample_size
    )
    if m.kind == "account":
        out["identifier_length"] = _group_id_length(m, id_is_string)
    return out


def _group_id_length(m: Measured, id_is_string: bool) -> RuleResult:
    id_column = str(m.id_column)
    idc = m.table[id_column]
    n = m.counts.get("id_long", 0)
    sample = ()
    if n and id_is_string:
        long_ids = m.ordered(m.table.filter(idc.length() > MAX_GROUP_ID_CHARS))
        sample = sample_rows(long_ids.select(id_column, length=idc.length()).limit(m.sample_size))
    return result(
        "identifier_length",
        n == 0,
        f"every {id_column} is at most {MAX_GROUP_ID_CHARS} characters"
        if n == 0
        else f"{plural(n, 'row')} with a {id_column} over {MAX_GROUP_ID_CHARS} "
        "characters (Segment drops such group calls)",
        count=n,
        sample=sample,
    )


def _single_identifier(m: Measured) -> RuleResult:
    if not m.both_ids:
        return result(
            "single_identifier", True, "the table does not carry both user_id and anonymous_id"
        )
    n = m.counts["both_ids"]
    sample = ()
    if n:
        both = m.table["user_id"].notnull() & m.table["anonymous_id"].notnull()
        rows = m.ordered(m.table.filter(both)).select("user_id", "anonymous_id")
        sample = sample_rows(rows.limit(m.sample_size))
    return result(
        "single_identifier",
        n == 0,
        "user_id and anonymous_id are never both set"
        if n == 0
        else f"{plural(n, 'row')} with values for both user_id and anonymous_id; "
        "Segment SQL Traits accept only one of them",
        count=n,
        sample=sample,
    )


def _duplicates(
    table: ir.Table, id_column: str, counts: Mapping[str, int], *, rows: int, sample_size: int
) -> RuleResult:
    import ibis

    non_null = rows - counts["id_nulls"]
    extra = non_null - counts["id_distinct"]
    if extra == 0:
        return result("identifier_unique", True, f"{counts['id_distinct']:,} distinct identifiers")
    groups = (
        table.filter(table[id_column].notnull())
        .group_by(id_column)
        .aggregate(rows=ibis._.count())
        .filter(ibis._["rows"] > 1)
    )
    n_ids = int(groups.count().execute())
    sample = sample_rows(groups.order_by([ibis.desc("rows"), id_column]).limit(sample_size))
    named = ", ".join(f"{row[id_column]!r} ×{row['rows']}" for row in sample)
    more = "" if n_ids <= len(sample) else f" and {n_ids - len(sample):,} more"
    return result(
        "identifier_unique",
        False,
        f"{plural(n_ids, 'identifier')} {'appears' if n_ids == 1 else 'appear'} more than "
        f"once ({plural(extra, 'extra row')}): "
        f"{named}{more}; Segment needs one row per profile (GROUP BY or DISTINCT)",
        count=n_ids,
        sample=sample,
    )
