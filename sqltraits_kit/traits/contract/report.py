"""What a contract check reports: the rules, their outcome, the report and its renderings."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from sqltraits_kit import formatting as fmt

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd

__all__ = [
    "GROUP_RESERVED_TRAITS",
    "IDENTITY_TRAITS",
    "MAX_COLUMNS",
    "MAX_GROUP_ID_CHARS",
    "MAX_RECORD_BYTES",
    "MAX_ROWS",
    "RULES",
    "SAMPLE_ROWS",
    "USER_RESERVED_TRAITS",
    "ContractReport",
    "RuleResult",
    "plural",
    "result",
    "sample_rows",
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
        errors = plural(len(self.errors), "error")
        warnings = plural(len(self.warnings), "warning")
        lines.append(
            f"{verdict}: {passed}/{len(self.rules)} rules passed, {errors}, {warnings} "
            f"({rows} rows, {len(self.columns)} columns, {fmt.seconds(self.seconds)})"
        )
        return "\n".join(lines)


# --------------------------------------------------------------------------- helpers


def json_safe(value: Any) -> Any:
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
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return json_safe(str(value))


def sample_rows(expr: ir.Table) -> tuple[dict[str, Any], ...]:
    # pyarrow keeps null and NaN apart (pandas would turn both into NaN).
    return tuple({k: json_safe(v) for k, v in row.items()} for row in expr.to_pyarrow().to_pylist())


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def result(
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
