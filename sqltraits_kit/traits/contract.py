"""Segment SQL-trait contract checks over any Ibis table, computed in the warehouse.

Segment's SQL Traits accept a query result only when it has one identifier column without
nulls or duplicates, 1 to 24 traits (25 columns in all), at most 25 million rows, records under
16 KB and only strings, numbers, booleans and timestamps (``docs/../segment-facts.md``). This
module checks a table against those rules *before* anything is sent, because the Tracking API
answers 200 even for data Segment then drops.

Everything is counted in the warehouse: one aggregate query computes every count; only when a
rule fails does a second, filtered and limited query fetch its first offending rows (at most
``sample_size``). The table itself never leaves the warehouse (1M rows: ~1 s on DuckDB).

API (the Preview page shows ``report.to_frame()`` and the samples of failed rules)::

    report = validate(table, id_column="user_id", kind="user")
    report.ok                 # no error-level rule failed
    report.failed             # failed rules, errors first
    report.to_dict()          # JSON-able (the CLI's --json)
    report.to_frame()         # one row per rule
    validate_trait_set(wh, trait_set)   # resolve() + validate() in one call

Rules (name: level) — :data:`RULES` holds the same list with a description of each:

- ``identifier_present`` (error), ``identifier_name`` (warning: not one of Segment's names),
  ``identifier_not_null``, ``identifier_not_empty``, ``identifier_unique`` (errors; duplicates
  are named), ``identifier_length`` (account traits: groupId <= 500 characters),
  ``single_identifier`` (error: values for both ``user_id`` and ``anonymous_id``);
- ``has_traits``, ``max_columns`` (<= 25), ``max_rows`` (<= 25M), ``record_size`` (< 16 KB, an
  estimate: see :func:`record_size_estimate`) — errors; ``has_rows`` (warning: an empty result
  would set every published profile's traits to null);
- ``no_nested_types`` (arrays, structs, maps, JSON), ``supported_types`` (binary, time,
  interval...) — errors; ``timestamps_have_timezone`` (warning: naive timestamps and dates are
  sent as UTC with a ``Z``);
- ``finite_numbers`` (error: NaN/±inf, per column with counts; they are not JSON and the
  payload layer would turn them into null, silently erasing a score);
- ``identity_trait_names`` (error), ``reserved_trait_names`` (warning),
  ``trait_name_collisions`` (error), ``snake_case_names`` (warning).

Reserved names — the decision: a trait that would change *who the profile is* is an error:
``email`` (Segment promotes ``traits.email`` to the profile's email identifier), ``id``,
``user_id`` and ``anonymous_id`` for user traits; ``id`` and ``group_id`` for account traits
(camelCase and snake_case forms alike). The other reserved names of the Identify/Group specs
(``name``, ``phone``, ``created_at``, ``plan``...) only warn: writing a model score there is
almost surely a mistake, but it cannot corrupt the identity graph. ``allow_reserved`` accepts
names a team does mean to overwrite.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from sqltraits_kit.traits.traitset import ACCOUNT_IDENTIFIER, USER_IDENTIFIERS, snake_case

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd

    from sqltraits_kit.traits.traitset import TraitSet
    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "GROUP_RESERVED_TRAITS",
    "IDENTITY_TRAITS",
    "MAX_COLUMNS",
    "MAX_RECORD_BYTES",
    "MAX_ROWS",
    "RULES",
    "USER_RESERVED_TRAITS",
    "ContractReport",
    "RuleResult",
    "record_size_estimate",
    "validate",
    "validate_trait_set",
]

MAX_COLUMNS = 25
MAX_ROWS = 25_000_000
MAX_RECORD_BYTES = 16 * 1024
MAX_GROUP_ID_CHARS = 500
SAMPLE_ROWS = 5
_SAMPLE_TEXT = 200  # characters of a string value shown in a sample row

#: Reserved traits of the Identify spec (``src/connections/spec/identify.md``).
USER_RESERVED_TRAITS = (
    "address",
    "age",
    "avatar",
    "birthday",
    "company",
    "createdAt",
    "description",
    "email",
    "firstName",
    "gender",
    "id",
    "lastName",
    "name",
    "phone",
    "title",
    "username",
    "website",
)
#: Reserved traits of the Group spec (``src/connections/spec/group.md``).
GROUP_RESERVED_TRAITS = (
    "address",
    "avatar",
    "createdAt",
    "description",
    "email",
    "employees",
    "id",
    "industry",
    "name",
    "phone",
    "website",
    "plan",
)
#: Trait names that change the profile's identity: an error, not a warning.
IDENTITY_TRAITS = {
    "user": ("email", "id", "user_id", "anonymous_id"),
    "account": ("id", "group_id"),
}

Level = Literal["error", "warning"]

#: Every rule: name -> (level, what it checks). Reports list rules in this order.
RULES: dict[str, tuple[Level, str]] = {
    "identifier_present": ("error", "the identifier column is in the table"),
    "identifier_name": ("warning", "the identifier is called user_id/email/anonymous_id/group_id"),
    "identifier_not_null": ("error", "no row has a null identifier"),
    "identifier_not_empty": ("error", "no row has an empty or blank identifier"),
    "identifier_unique": ("error", "one row per identifier (no duplicates)"),
    "identifier_length": ("error", "groupId values are at most 500 characters"),
    "single_identifier": ("error", "no row has values for both user_id and anonymous_id"),
    "has_traits": ("error", "at least one trait column besides the identifier"),
    "max_columns": ("error", "at most 25 columns in all"),
    "has_rows": ("warning", "the result is not empty"),
    "max_rows": ("error", "at most 25 million rows"),
    "record_size": ("error", "every record is under 16 KB (estimated JSON size)"),
    "no_nested_types": ("error", "no arrays, structs, maps or JSON columns"),
    "supported_types": ("error", "only strings, numbers, booleans and timestamps"),
    "timestamps_have_timezone": ("warning", "timestamps carry a time zone"),
    "finite_numbers": ("error", "no NaN or ±infinity values"),
    "identity_trait_names": ("error", "no trait would change the profile's identity"),
    "reserved_trait_names": ("warning", "no trait uses a reserved Segment trait name"),
    "trait_name_collisions": ("error", "trait names stay distinct after snake_casing"),
    "snake_case_names": ("warning", "trait names are lower snake_case"),
}


@dataclass(frozen=True)
class RuleResult:
    """One rule's outcome. ``count`` is offending rows (or columns/names for schema rules)."""

    name: str
    level: Level
    passed: bool
    count: int
    message: str
    sample: tuple[dict[str, Any], ...] = ()
    columns: Mapping[str, int] = field(default_factory=dict)  # offending column -> count

    @property
    def status(self) -> str:
        return "ok" if self.passed else self.level

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "level": self.level,
            "passed": self.passed,
            "count": self.count,
            "message": self.message,
            "sample": [dict(row) for row in self.sample],
            "columns": dict(self.columns),
        }


@dataclass(frozen=True)
class ContractReport:
    """The outcome of :func:`validate`: every rule, passed or not, in :data:`RULES` order."""

    rules: tuple[RuleResult, ...]
    id_column: str | None
    kind: str
    rows: int | None
    columns: tuple[str, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        """True when no error-level rule failed (warnings do not block a publish)."""
        return not self.errors

    @property
    def errors(self) -> list[RuleResult]:
        return [r for r in self.rules if not r.passed and r.level == "error"]

    @property
    def warnings(self) -> list[RuleResult]:
        return [r for r in self.rules if not r.passed and r.level == "warning"]

    @property
    def failed(self) -> list[RuleResult]:
        return [*self.errors, *self.warnings]

    def rule(self, name: str) -> RuleResult:
        for result in self.rules:
            if result.name == name:
                return result
        raise KeyError(f"no rule {name!r} in this report (rules: {', '.join(self.names())})")

    def names(self) -> list[str]:
        return [r.name for r in self.rules]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (sample values are plain JSON types; NaN shows as the string ``"NaN"``)."""
        return {
            "ok": self.ok,
            "id_column": self.id_column,
            "kind": self.kind,
            "rows": self.rows,
            "columns": list(self.columns),
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "seconds": round(self.seconds, 3),
            "rules": [r.to_dict() for r in self.rules],
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per rule: rule, level, status (ok/error/warning), passed, count, message."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "rule": r.name,
                    "level": r.level,
                    "status": r.status,
                    "passed": r.passed,
                    "count": r.count,
                    "message": r.message,
                }
                for r in self.rules
            ],
            columns=["rule", "level", "status", "passed", "count", "message"],
        )

    def summary(self) -> str:
        """Plain text for a terminal: failed rules with their first rows, then a verdict."""
        lines = []
        for r in self.failed:
            lines.append(f"{r.level.upper():<7} {r.name}: {r.message}")
            for row in r.sample:
                lines.append(f"          {json.dumps(row, ensure_ascii=False, default=str)}")
        passed = sum(r.passed for r in self.rules)
        rows = "?" if self.rows is None else f"{self.rows:,}"
        verdict = "OK" if self.ok else "FAILED"
        errors = _plural(len(self.errors), "error")
        warnings = _plural(len(self.warnings), "warning")
        lines.append(
            f"{verdict}: {passed}/{len(self.rules)} rules passed, {errors}, {warnings} "
            f"({rows} rows, {len(self.columns)} columns, {self.seconds:.2f} s)"
        )
        return "\n".join(lines)


# --------------------------------------------------------------------------- helpers


def _json_safe(value: Any) -> Any:
    """A sample value as a plain JSON value a person can read (NaN stays visible as "NaN")."""
    if value is None or isinstance(value, bool | int | str):
        if isinstance(value, str) and len(value) > _SAMPLE_TEXT:
            return value[:_SAMPLE_TEXT] + "…"
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, Decimal):
        return str(value) if not value.is_finite() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return _json_safe(str(value))


def _rows(expr: ir.Table) -> tuple[dict[str, Any], ...]:
    # pyarrow keeps null and NaN apart (pandas would turn both into NaN).
    return tuple(
        {k: _json_safe(v) for k, v in row.items()} for row in expr.to_pyarrow().to_pylist()
    )


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _type_class(dtype: Any) -> str:
    if dtype.is_array() or dtype.is_struct() or dtype.is_map() or dtype.is_json():
        return "nested"
    if dtype.is_boolean():
        return "boolean"
    if dtype.is_numeric():
        return "number"
    if dtype.is_string() or dtype.is_uuid():
        return "string"
    if dtype.is_timestamp() or dtype.is_date():
        return "timestamp"
    return "unsupported"


def _fixed_width(dtype: Any) -> int | None:
    """The longest JSON text of a value of this type, or None when it must be measured."""
    if dtype.is_boolean():
        return 5  # false
    if dtype.is_integer():
        return 20  # -9223372036854775808
    if dtype.is_floating():
        return 24  # -2.2250738585072014e-308, the longest shortest-repr of a double
    if dtype.is_decimal():
        return max(24, (dtype.precision or 38) + 2)  # sent as a float, or an int when whole
    if dtype.is_timestamp() or dtype.is_date():
        return 26  # "2024-01-01T00:00:00.000Z"
    if dtype.is_uuid():
        return 38
    return None


def record_size_estimate(table: ir.Table, /) -> ir.IntegerValue:
    """An Ibis expression estimating each row's size in bytes as a JSON object of its columns.

    Segment discards a SQL-trait record of 16 KB or more. The record is sent as JSON, so the
    estimate adds 2 for the braces and, per column, the quoted key plus ``:`` and ``,``
    (``len(name) + 4``) and the value: ``null`` (4) for a null; for text, its length plus 2
    quotes (measured in the warehouse: ``length(value)``); for numbers, booleans and timestamps
    the longest JSON form of the type (float 24, integer 20, boolean 5, timestamp 26) — only
    text can make a record big, and measuring numbers would mean formatting every one of them,
    which was most of the cost of a validation. So the estimate is an upper bound for ASCII
    text (within 25 bytes per numeric column); it counts characters, not UTF-8 bytes, and
    ignores JSON escapes, so text with many non-ASCII characters or quotes can be larger than
    estimated. Arrays and other refused types are measured as their text cast.
    """
    import ibis

    total: Any = ibis.literal(2)
    for name, dtype in table.schema().items():
        col = table[name]
        key = len(json.dumps(name, ensure_ascii=False)) + 2
        width = _fixed_width(dtype)
        if width is not None:
            value = ibis.ifelse(col.isnull(), 4, width)
        else:
            text = col.length() if dtype.is_string() else col.cast("string").length()
            value = ibis.coalesce(text + 2, 4)
        total = total + key + value
    return total.cast("int64")


def _default_id(columns: Sequence[str], kind: str) -> str | None:
    candidates = (ACCOUNT_IDENTIFIER,) if kind == "account" else USER_IDENTIFIERS
    return next((c for c in candidates if c in columns), None)


def _result(
    name: str,
    passed: bool,
    message: str,
    *,
    count: int = 0,
    sample: Iterable[dict[str, Any]] = (),
    columns: Mapping[str, int] | None = None,
) -> RuleResult:
    level = RULES[name][0]
    return RuleResult(
        name=name,
        level=level,
        passed=passed,
        count=count,
        message=message,
        sample=tuple(sample),
        columns=dict(columns or {}),
    )


# --------------------------------------------------------------------------- validate


def validate(
    table: ir.Table,
    /,
    *,
    id_column: str | None = None,
    kind: Literal["user", "account"] = "user",
    allow_reserved: Iterable[str] = (),
    sample_size: int = SAMPLE_ROWS,
    max_columns: int = MAX_COLUMNS,
    max_rows: int = MAX_ROWS,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> ContractReport:
    """Check ``table`` against Segment's SQL-trait contract; returns a :class:`ContractReport`.

    ``id_column`` defaults to the first of ``user_id``/``email``/``anonymous_id`` the table has
    (``group_id`` for ``kind="account"``). Every other column is a trait. ``allow_reserved``
    lists trait names the team does mean to write although Segment reserves them.
    """
    import ibis

    if kind not in ("user", "account"):
        raise ValueError(f"kind must be 'user' or 'account', got {kind!r}")
    sample_size = max(0, min(int(sample_size), SAMPLE_ROWS))
    started = time.perf_counter()
    schema = table.schema()
    columns = list(schema.names)
    id_column = id_column or _default_id(columns, kind)
    has_id = id_column is not None and id_column in columns
    traits = [c for c in columns if c != id_column]
    allowed = {snake_case(n) for n in allow_reserved} | set(allow_reserved)
    results: dict[str, RuleResult] = {}

    def ordered(rows: ir.Table) -> ir.Table:
        return rows.order_by(id_column) if has_id else rows

    # ---- one aggregate query for every count
    idc = table[id_column] if has_id else None
    id_is_string = has_id and schema[id_column].is_string()
    floats = [c for c in columns if schema[c].is_floating()]
    both_ids = kind == "user" and {"user_id", "anonymous_id"} <= set(columns)
    size = record_size_estimate(table)
    metrics: dict[str, Any] = {"rows": table.count()}
    if has_id:
        metrics["id_nulls"] = table.count(where=idc.isnull())
        metrics["id_distinct"] = idc.nunique()
        if id_is_string:
            metrics["id_empty"] = table.count(where=idc.strip() == "")
            if kind == "account":
                metrics["id_long"] = table.count(where=idc.length() > MAX_GROUP_ID_CHARS)
    if both_ids:
        both = table["user_id"].notnull() & table["anonymous_id"].notnull()
        metrics["both_ids"] = table.count(where=both)
    nonfinite = {c: table[c].isnan() | table[c].isinf() for c in floats}
    for i, c in enumerate(floats):
        metrics[f"nonfinite_{i}"] = table.count(where=nonfinite[c])
    metrics["oversize"] = table.count(where=size >= max_record_bytes)
    metrics["max_size"] = size.max()
    counts = {k: (0 if v is None else int(v)) for k, v in _aggregate(table, metrics).items()}
    rows = counts["rows"]

    # ---- identifier
    allowed_ids = (ACCOUNT_IDENTIFIER,) if kind == "account" else USER_IDENTIFIERS
    if not has_id:
        wanted = id_column or " / ".join(allowed_ids)
        results["identifier_present"] = _result(
            "identifier_present",
            False,
            f"no identifier column {wanted!r} in the table (columns: {', '.join(columns)})",
            count=1,
        )
    else:
        results["identifier_present"] = _result(
            "identifier_present", True, f"identifier column {id_column!r} ({schema[id_column]})"
        )
        good_name = id_column in allowed_ids
        results["identifier_name"] = _result(
            "identifier_name",
            good_name,
            f"{id_column!r} is a Segment identifier"
            if good_name
            else f"{id_column!r} is not one of Segment's identifiers ({', '.join(allowed_ids)}); "
            "a trait set's resolve() sends it under the right name, a raw SQL Trait would fail",
            count=0 if good_name else 1,
        )
        n = counts["id_nulls"]
        results["identifier_not_null"] = _result(
            "identifier_not_null",
            n == 0,
            "no null identifiers"
            if n == 0
            else f"{_plural(n, 'row')} with a null {id_column}: Segment cannot say whose traits "
            "they are and refuses the result",
            count=n,
            sample=_rows(table.filter(idc.isnull()).limit(sample_size)) if n else (),
        )
        n = counts.get("id_empty", 0)
        results["identifier_not_empty"] = _result(
            "identifier_not_empty",
            n == 0,
            ("no empty identifiers" if id_is_string else f"{schema[id_column]} ids are never empty")
            if n == 0
            else f"{_plural(n, 'row')} with an empty or blank {id_column}",
            count=n,
            sample=_rows(ordered(table.filter(idc.strip() == "")).limit(sample_size)) if n else (),
        )
        results["identifier_unique"] = _duplicates(
            table, id_column, counts, rows=rows, sample_size=sample_size
        )
        if kind == "account":
            n = counts.get("id_long", 0)
            long_ids = table.filter(idc.length() > MAX_GROUP_ID_CHARS) if id_is_string else None
            results["identifier_length"] = _result(
                "identifier_length",
                n == 0,
                f"every {id_column} is at most {MAX_GROUP_ID_CHARS} characters"
                if n == 0
                else f"{_plural(n, 'row')} with a {id_column} over {MAX_GROUP_ID_CHARS} "
                "characters (Segment drops such group calls)",
                count=n,
                sample=_rows(
                    ordered(long_ids).select(id_column, length=idc.length()).limit(sample_size)
                )
                if n
                else (),
            )
    if both_ids:
        n = counts["both_ids"]
        sample = ()
        if n:
            sample = _rows(
                ordered(table.filter(both)).select("user_id", "anonymous_id").limit(sample_size)
            )
        results["single_identifier"] = _result(
            "single_identifier",
            n == 0,
            "user_id and anonymous_id are never both set"
            if n == 0
            else f"{_plural(n, 'row')} with values for both user_id and anonymous_id; "
            "Segment SQL Traits accept only one of them",
            count=n,
            sample=sample,
        )
    else:
        results["single_identifier"] = _result(
            "single_identifier", True, "the table does not carry both user_id and anonymous_id"
        )

    # ---- shape
    results["has_traits"] = _result(
        "has_traits",
        bool(traits),
        f"{_plural(len(traits), 'trait column')}"
        if traits
        else "no trait columns: Segment needs at least one besides the identifier",
        count=0 if traits else 1,
    )
    results["max_columns"] = _result(
        "max_columns",
        len(columns) <= max_columns,
        f"{len(columns)} columns (at most {max_columns})"
        if len(columns) <= max_columns
        else f"{len(columns)} columns; Segment SQL Traits take at most {max_columns} "
        f"(drop {len(columns) - max_columns})",
        count=max(0, len(columns) - max_columns),
    )
    results["has_rows"] = _result(
        "has_rows",
        rows > 0,
        f"{rows:,} rows"
        if rows
        else "the result is empty: publishing it would set the traits of every profile "
        "published before to null (Segment's on-remove rule)",
        count=0 if rows else 1,
    )
    results["max_rows"] = _result(
        "max_rows",
        rows <= max_rows,
        f"{rows:,} rows (at most {max_rows:,})"
        if rows <= max_rows
        else f"{rows:,} rows; Segment SQL Traits take at most {max_rows:,}",
        count=max(0, rows - max_rows),
    )
    n = counts["oversize"]
    biggest = counts["max_size"]
    sample = ()
    if n:
        big = table.mutate(_size=size).filter(ibis._["_size"] >= max_record_bytes)
        order = [ibis.desc("_size"), id_column] if has_id else [ibis.desc("_size")]
        keep = [id_column] if has_id else []
        sample = _rows(
            big.order_by(order).select(*keep, estimated_bytes=ibis._["_size"]).limit(sample_size)
        )
    results["record_size"] = _result(
        "record_size",
        n == 0,
        f"largest record estimated at {biggest:,} bytes (limit {max_record_bytes:,})"
        if n == 0
        else f"{_plural(n, 'record')} of about {max_record_bytes:,} bytes or more "
        f"(largest estimated at {biggest:,}); Segment discards them",
        count=n,
        sample=sample,
    )

    # ---- types
    classes = {c: _type_class(schema[c]) for c in columns}
    nested = {c: 1 for c, k in classes.items() if k == "nested"}
    results["no_nested_types"] = _result(
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
    results["supported_types"] = _result(
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
    results["timestamps_have_timezone"] = _result(
        "timestamps_have_timezone",
        not naive,
        "every timestamp has a time zone"
        if not naive
        else f"{', '.join(naive)}: no time zone; they will be sent as UTC with a 'Z' "
        "(store timestamptz / TIMESTAMP WITH TIME ZONE if they are local times)",
        count=len(naive),
        columns=naive,
    )
    bad_numbers = {c: counts[f"nonfinite_{i}"] for i, c in enumerate(floats)}
    bad_numbers = {c: n for c, n in bad_numbers.items() if n}
    sample = ()
    if bad_numbers:
        any_bad = ibis.or_(*(nonfinite[c] for c in bad_numbers))
        keep = [id_column] if has_id else []
        sample = _rows(
            ordered(table.filter(any_bad)).select(*keep, *bad_numbers).limit(sample_size)
        )
    results["finite_numbers"] = _result(
        "finite_numbers",
        not bad_numbers,
        "no NaN or infinite values"
        if not bad_numbers
        else "NaN or ±infinity in "
        + ", ".join(f"{c} ({_plural(n, 'row')})" for c, n in bad_numbers.items())
        + ": not JSON; they would be published as null, erasing the trait",
        count=sum(bad_numbers.values()),
        sample=sample,
        columns=bad_numbers,
    )

    # ---- names
    results.update(_name_rules(traits, id_column, kind, allowed))

    report_rules = tuple(results[name] for name in RULES if name in results)
    return ContractReport(
        rules=report_rules,
        id_column=id_column if has_id else None,
        kind=kind,
        rows=rows,
        columns=tuple(columns),
        seconds=time.perf_counter() - started,
    )


def _aggregate(table: ir.Table, metrics: Mapping[str, Any]) -> dict[str, Any]:
    frame = table.aggregate(**metrics).to_pyarrow().to_pylist()
    return frame[0]


def _duplicates(
    table: ir.Table, id_column: str, counts: Mapping[str, int], *, rows: int, sample_size: int
) -> RuleResult:
    import ibis

    non_null = rows - counts["id_nulls"]
    extra = non_null - counts["id_distinct"]
    if extra == 0:
        return _result("identifier_unique", True, f"{counts['id_distinct']:,} distinct identifiers")
    groups = (
        table.filter(table[id_column].notnull())
        .group_by(id_column)
        .aggregate(rows=ibis._.count())
        .filter(ibis._["rows"] > 1)
    )
    n_ids = int(groups.count().execute())
    sample = _rows(groups.order_by([ibis.desc("rows"), id_column]).limit(sample_size))
    named = ", ".join(f"{row[id_column]!r} ×{row['rows']}" for row in sample)
    more = "" if n_ids <= len(sample) else f" and {n_ids - len(sample):,} more"
    return _result(
        "identifier_unique",
        False,
        f"{_plural(n_ids, 'identifier')} {'appears' if n_ids == 1 else 'appear'} more than "
        f"once ({_plural(extra, 'extra row')}): "
        f"{named}{more}; Segment needs one row per profile (GROUP BY or DISTINCT)",
        count=n_ids,
        sample=sample,
    )


def _name_rules(
    traits: list[str], id_column: str | None, kind: str, allowed: set[str]
) -> dict[str, RuleResult]:
    identity = {snake_case(n).replace("_", "") for n in IDENTITY_TRAITS[kind]}
    reserved_list = GROUP_RESERVED_TRAITS if kind == "account" else USER_RESERVED_TRAITS
    spec = "group" if kind == "account" else "identify"
    reserved = {snake_case(n) for n in reserved_list}
    identity_hits, reserved_hits = {}, {}
    for name in traits:
        snake = snake_case(name)
        if name in allowed or snake in allowed:
            continue
        if snake.replace("_", "") in identity:
            identity_hits[name] = 1
        elif snake in reserved:
            reserved_hits[name] = 1
    out: dict[str, RuleResult] = {}
    out["identity_trait_names"] = _result(
        "identity_trait_names",
        not identity_hits,
        "no trait changes the profile's identity"
        if not identity_hits
        else f"{', '.join(identity_hits)}: these trait names change who the profile is "
        f"({'email is promoted to the email identifier; ' if kind == 'user' else ''}"
        "id-like traits overwrite identifiers); rename them, or pass allow_reserved "
        "if this is deliberate",
        count=len(identity_hits),
        columns=identity_hits,
    )
    out["reserved_trait_names"] = _result(
        "reserved_trait_names",
        not reserved_hits,
        "no reserved trait names"
        if not reserved_hits
        else f"{', '.join(reserved_hits)}: reserved by Segment's {spec} spec, destinations "
        "give them a fixed meaning; rename them unless that is the intent",
        count=len(reserved_hits),
        columns=reserved_hits,
    )
    groups: dict[str, list[str]] = {}
    for name in ([id_column] if id_column else []) + traits:
        groups.setdefault(snake_case(name), []).append(name)
    collisions = {k: v for k, v in groups.items() if len(v) > 1}
    out["trait_name_collisions"] = _result(
        "trait_name_collisions",
        not collisions,
        "trait names are distinct after snake_casing"
        if not collisions
        else "; ".join(f"{' and '.join(v)} all become {k!r}" for k, v in collisions.items())
        + " (Segment keys traits in snake_case): rename all but one",
        count=len(collisions),
        columns={name: len(v) for v in collisions.values() for name in v},
    )
    not_snake = {n: 1 for n in traits if snake_case(n) != n}
    out["snake_case_names"] = _result(
        "snake_case_names",
        not not_snake,
        "every trait name is lower snake_case"
        if not not_snake
        else ", ".join(f"{n} -> {snake_case(n) or '?'}" for n in not_snake)
        + ": Segment keys computed traits in snake_case; a trait set's [traits] can rename them",
        count=len(not_snake),
        columns=not_snake,
    )
    return out


def validate_trait_set(
    wh: Warehouse,
    trait_set: TraitSet,
    /,
    *,
    allow_reserved: Iterable[str] = (),
    source: ir.Table | None = None,
    **options: Any,
) -> ContractReport:
    """Resolve ``trait_set`` (:func:`sqltraits_kit.traits.traitset.resolve`) and validate the
    result; ``source``: rows to resolve instead of the trait set's table (staged rows)."""
    from sqltraits_kit.traits.traitset import resolve

    table = resolve(wh, trait_set, source=source)
    return validate(
        table,
        id_column=trait_set.identifier,
        kind=trait_set.kind,
        allow_reserved=allow_reserved,
        **options,
    )
