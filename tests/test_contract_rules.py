"""The contract's shape and type rules, each one's verdict, count, message and sample, exactly.

test_contract.py checks each rule on both backends with a substring of its message; mutation
testing (benchmarks/mutation.py) showed that left the passing messages, the singular forms and
the samples free to change. These read the whole report of a few small tables, one that passes
everything and some that fail each rule, on an in-memory DuckDB (the rules are Python over counts
the measuring query returns; test_contract.py runs that query on PostgreSQL too).
"""

from __future__ import annotations

import datetime as dt

import ibis
import pyarrow as pa
import pytest

from sqltraits_kit.traits.contract import validate

SHAPE = ("has_traits", "max_columns", "has_rows", "max_rows", "record_size")
TYPES = ("no_nested_types", "supported_types", "timestamps_have_timezone", "finite_numbers")
UTC_AT = pa.array([dt.datetime(2025, 1, 1, tzinfo=dt.UTC)] * 3, pa.timestamp("us", "UTC"))


@pytest.fixture(scope="module")
def con():
    return ibis.duckdb.connect()


def _report(con, name: str, columns: dict, **options):
    return validate(con.create_table(name, pa.table(columns), overwrite=True), **options)


def _rules(report, names) -> dict[str, tuple]:
    return {
        r.name: (r.passed, r.count, r.message, dict(r.columns))
        for r in report.rules
        if r.name in names
    }


def test_a_good_table_says_what_it_checked(con):
    cols = {"user_id": ["u0", "u1", "u2"], "score": [0.5, 0.25, 1.0], "tier": ["a", "b", "c"]}
    report = _report(con, "good", {**cols, "at": UTC_AT})
    assert _rules(report, SHAPE + TYPES) == {
        "has_traits": (True, 0, "3 trait columns", {}),
        "max_columns": (True, 0, "4 columns (at most 25)", {}),
        "has_rows": (True, 0, "3 rows", {}),
        "max_rows": (True, 0, "3 rows (at most 25,000,000)", {}),
        "record_size": (True, 0, "largest record estimated at 93 bytes (limit 16,384)", {}),
        "no_nested_types": (True, 0, "no arrays, structs, maps or JSON", {}),
        "supported_types": (
            True,
            0,
            "every column is a string, number, boolean or timestamp",
            {},
        ),
        "timestamps_have_timezone": (True, 0, "every timestamp has a time zone", {}),
        "finite_numbers": (True, 0, "no NaN or infinite values", {}),
    }
    assert all(not r.sample for r in report.rules)


def test_every_shape_and_type_rule_failing_at_once(con):
    columns = {
        "user_id": ["u0", "u1", "u2", "u3"],
        "score": pa.array([float("nan"), float("inf"), 1.0, -float("inf")]),
        "ltv": pa.array([1.0, float("nan"), 2.0, 3.0]),
        "tags": pa.array([[1], [2], [3], [4]]),
        "blob": pa.array([b"x"] * 4),
        "day": pa.array([dt.date(2025, 1, 1)] * 4),
        "naive": pa.array([dt.datetime(2025, 1, 1)] * 4, pa.timestamp("us")),
        "note": ["short", "x" * 20_000, "y" * 17_000, ""],
    }
    report = _report(con, "bad", columns, max_rows=3, max_columns=5)
    assert _rules(report, SHAPE + TYPES) == {
        "has_traits": (True, 0, "7 trait columns", {}),
        "max_columns": (False, 3, "8 columns; Segment SQL Traits take at most 5 (drop 3)", {}),
        "has_rows": (True, 0, "4 rows", {}),
        "max_rows": (False, 1, "4 rows; Segment SQL Traits take at most 3", {}),
        "record_size": (
            False,
            2,
            "2 records of about 16,384 bytes or more (largest estimated at 20,183); "
            "Segment discards them",
            {},
        ),
        "no_nested_types": (
            False,
            1,
            "tags is array<int64>: SQL Traits take no arrays or objects "
            "(send a comma-separated string instead)",
            {"tags": 1},
        ),
        "supported_types": (
            False,
            1,
            "blob is binary: Segment accepts strings, numbers, booleans and timestamps (cast it)",
            {"blob": 1},
        ),
        "timestamps_have_timezone": (
            False,
            2,
            "day, naive: no time zone; they will be sent as UTC with a 'Z' "
            "(store timestamptz / TIMESTAMP WITH TIME ZONE if they are local times)",
            {"day": 1, "naive": 1},
        ),
        "finite_numbers": (
            False,
            4,
            "NaN or ±infinity in score (3 rows), ltv (1 row): not JSON; they would be "
            "published as null, erasing the trait",
            {"score": 3, "ltv": 1},
        ),
    }
    # The samples: the offending rows by identifier, the biggest records first.
    sizes = report.rule("record_size").sample
    assert [r["user_id"] for r in sizes] == ["u1", "u2"]
    assert sizes[0]["estimated_bytes"] == 20_183 > sizes[1]["estimated_bytes"] >= 16_384
    assert [dict(r) for r in report.rule("finite_numbers").sample] == [
        {"user_id": "u0", "score": "NaN", "ltv": 1.0},
        {"user_id": "u1", "score": "Infinity", "ltv": "NaN"},
        {"user_id": "u3", "score": "-Infinity", "ltv": 3.0},
    ]
    assert not report.rule("max_rows").sample and not report.rule("no_nested_types").sample
    assert not report.ok


def test_singular_forms_and_a_sample_without_an_identifier(con):
    columns = {
        "score": pa.array([float("nan"), 1.0]),
        "note": ["x" * 20_000, "a"],
        "s": pa.array([{"a": 1}, {"a": 2}]),
        "tags": pa.array([[1], [2]]),
    }
    report = _report(con, "no_id", columns)
    got = _rules(report, ("record_size", "no_nested_types", "finite_numbers"))
    assert got == {
        "record_size": (
            False,
            1,
            "1 record of about 16,384 bytes or more (largest estimated at 20,073); "
            "Segment discards them",
            {},
        ),
        "no_nested_types": (
            False,
            2,
            "s is struct<a: int64>; tags is array<int64>: SQL Traits take no arrays or objects "
            "(send a comma-separated string instead)",
            {"s": 1, "tags": 1},
        ),
        "finite_numbers": (
            False,
            1,
            "NaN or ±infinity in score (1 row): not JSON; they would be published as null, "
            "erasing the trait",
            {"score": 1},
        ),
    }
    assert [dict(r) for r in report.rule("record_size").sample] == [{"estimated_bytes": 20_073}]
    assert [dict(r) for r in report.rule("finite_numbers").sample] == [{"score": "NaN"}]


def test_no_traits_and_no_rows(con):
    report = _report(con, "empty", {"user_id": pa.array([], pa.string())})
    assert _rules(report, SHAPE) == {
        "has_traits": (
            False,
            1,
            "no trait columns: Segment needs at least one besides the identifier",
            {},
        ),
        "max_columns": (True, 0, "1 columns (at most 25)", {}),
        "has_rows": (
            False,
            1,
            "the result is empty: publishing it would set the traits of every profile "
            "published before to null (Segment's on-remove rule)",
            {},
        ),
        "max_rows": (True, 0, "0 rows (at most 25,000,000)", {}),
        "record_size": (True, 0, "largest record estimated at 0 bytes (limit 16,384)", {}),
    }


@pytest.mark.parametrize(
    ("rows", "limit", "passed", "count", "message"),
    [
        (3, 3, True, 0, "3 rows (at most 3)"),
        (3, 2, False, 1, "3 rows; Segment SQL Traits take at most 2"),
    ],
)
def test_max_rows_at_and_over_the_limit(con, rows, limit, passed, count, message):
    cols = {"user_id": [f"u{i}" for i in range(rows)], "x": list(range(rows))}
    rule = _report(con, f"rows_{limit}", cols, max_rows=limit).rule("max_rows")
    assert (rule.passed, rule.count, rule.message) == (passed, count, message)


def test_one_row_is_a_result(con):
    report = _report(con, "one_row", {"user_id": ["a"], "x": [1]})
    assert _rules(report, ("has_rows",)) == {"has_rows": (True, 0, "1 rows", {})}


@pytest.mark.parametrize(("size", "passed"), [(600, True), (700, False)])
def test_the_record_size_limit_is_what_the_caller_passes(con, size, passed):
    cols = {"user_id": ["a", "b"], "note": ["n" * size, "short"]}
    rule = _report(con, f"size_{size}", cols, max_record_bytes=650).rule("record_size")
    assert rule.passed is passed and rule.count == (0 if passed else 1)
    assert rule.message.endswith("(limit 650)" if passed else "; Segment discards them")
