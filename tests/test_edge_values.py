"""Edge values of the output table's contract, on DuckDB and PostgreSQL.

Only 26 columns was tested, so ``len(columns) < 25`` (refusing a table of exactly 25 columns,
which Segment accepts) passed every contract test.
"""

from __future__ import annotations

import pyarrow as pa

from sqltraits_kit.traits.contract import MAX_COLUMNS, validate


def _table(wh, name: str, traits: int):
    columns = {"user_id": ["a", "b"], **{f"trait_{i:02d}": [i, i + 1] for i in range(traits)}}
    return wh.con.create_table(name, obj=pa.table(columns))


def _max_columns(report):
    (rule,) = [r for r in report.rules if r.name == "max_columns"]
    return rule


def test_exactly_25_columns_are_accepted(wh, unique_name):
    assert MAX_COLUMNS == 25
    report = validate(_table(wh, unique_name, 24), id_column="user_id")
    rule = _max_columns(report)
    assert rule.passed and rule.count == 0
    assert rule.message == "25 columns (at most 25)"
    assert report.ok, report.summary()


def test_26_columns_are_refused_naming_how_many_to_drop(wh, unique_name):
    report = validate(_table(wh, unique_name, 25), id_column="user_id")
    rule = _max_columns(report)
    assert not rule.passed and rule.count == 1
    assert rule.message == "26 columns; Segment SQL Traits take at most 25 (drop 1)"
    assert not report.ok
