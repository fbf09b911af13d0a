"""One aggregate query for every count a contract check needs, and the record-size estimate.

Only when a rule fails does a rule function run a second, filtered and limited query for its
first offending rows; the table never leaves the warehouse.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqltraits_kit.traits.contract.report import MAX_GROUP_ID_CHARS
from sqltraits_kit.traits.traitset import ACCOUNT_IDENTIFIER, USER_IDENTIFIERS

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["Measured", "default_id", "measure", "record_size_estimate", "type_class"]


def type_class(dtype: Any) -> str:
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


def fixed_width(dtype: Any) -> int | None:
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
        width = fixed_width(dtype)
        if width is not None:
            value = ibis.ifelse(col.isnull(), 4, width)
        else:
            text = col.length() if dtype.is_string() else col.cast("string").length()
            value = ibis.coalesce(text + 2, 4)
        total = total + key + value
    return total.cast("int64")


def default_id(columns: Sequence[str], kind: str) -> str | None:
    candidates = (ACCOUNT_IDENTIFIER,) if kind == "account" else USER_IDENTIFIERS
    return next((c for c in candidates if c in columns), None)


@dataclass(frozen=True)
class Measured:
    """A table about to be checked, with every count of the one aggregate query."""

    table: ir.Table
    schema: Any
    columns: list[str]
    id_column: str | None
    kind: str
    counts: dict[str, int]
    size: ir.IntegerValue  # the record-size estimate per row
    floats: list[str]
    sample_size: int

    @property
    def has_id(self) -> bool:
        return self.id_column is not None and self.id_column in self.columns

    @property
    def rows(self) -> int:
        return self.counts["rows"]

    @property
    def traits(self) -> list[str]:
        return [c for c in self.columns if c != self.id_column]

    @property
    def both_ids(self) -> bool:
        """A user table carrying both user_id and anonymous_id columns."""
        return self.kind == "user" and {"user_id", "anonymous_id"} <= set(self.columns)

    def nonfinite(self, column: str) -> ir.BooleanValue:
        return self.table[column].isnan() | self.table[column].isinf()

    def ordered(self, rows: ir.Table) -> ir.Table:
        """``rows`` in identifier order (samples are stable), when there is an identifier."""
        return rows.order_by(self.id_column) if self.has_id else rows


def measure(
    table: ir.Table,
    /,
    *,
    id_column: str | None,
    kind: str,
    sample_size: int,
    max_record_bytes: int,
) -> Measured:
    """Count everything the rules need in one aggregate query (``id_column`` may be absent)."""
    schema = table.schema()
    columns = list(schema.names)
    has_id = id_column is not None and id_column in columns
    floats = [c for c in columns if schema[c].is_floating()]
    size = record_size_estimate(table)
    metrics: dict[str, Any] = {"rows": table.count()}
    if has_id:
        idc = table[id_column]
        metrics["id_nulls"] = table.count(where=idc.isnull())
        metrics["id_distinct"] = idc.nunique()
        if schema[id_column].is_string():
            metrics["id_empty"] = table.count(where=idc.strip() == "")
            if kind == "account":
                metrics["id_long"] = table.count(where=idc.length() > MAX_GROUP_ID_CHARS)
    if kind == "user" and {"user_id", "anonymous_id"} <= set(columns):
        both = table["user_id"].notnull() & table["anonymous_id"].notnull()
        metrics["both_ids"] = table.count(where=both)
    for i, c in enumerate(floats):
        metrics[f"nonfinite_{i}"] = table.count(where=table[c].isnan() | table[c].isinf())
    metrics["oversize"] = table.count(where=size >= max_record_bytes)
    metrics["max_size"] = size.max()
    row = table.aggregate(**metrics).to_pyarrow().to_pylist()[0]
    counts = {k: (0 if v is None else int(v)) for k, v in row.items()}
    return Measured(table, schema, columns, id_column, kind, counts, size, floats, sample_size)
