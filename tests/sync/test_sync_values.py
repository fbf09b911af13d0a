"""Every kind of bad value is either converted correctly or reported per row."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import pyarrow as pa
import pytest

from sqltraits_kit.publishing.sync import dry_run, failed_rows, sync
from sqltraits_kit.publishing.sync.reports import SyncRefused
from tests.support.sync import make_table, server_profiles

NY = dt.timezone(dt.timedelta(hours=-5))


def test_every_supported_type_is_converted_to_plain_json(wh, unique_name, segment_server, client):
    data = pa.table(
        {
            "user_id": pa.array([1, 2]),
            "big_int": pa.array([2**53 + 1, -7], pa.int64()),
            "small_int": pa.array([3, None], pa.int16()),
            "ratio": pa.array([0.1, None], pa.float64()),
            "ratio32": pa.array([0.1, 2.5], pa.float32()),
            "money": pa.array([decimal.Decimal("12.34"), decimal.Decimal(5)], pa.decimal128(10, 2)),
            "flag": pa.array([True, False]),
            "name": pa.array(["Zoë «naïve» 東京 😀", 'quote " and \\ backslash']),
            "naive_at": pa.array(
                [dt.datetime(2026, 3, 1, 12, 30, 15, 250000), None], pa.timestamp("us")
            ),
            "zoned_at": pa.array(
                [dt.datetime(2026, 3, 1, 7, 0, tzinfo=NY), dt.datetime(2026, 1, 1, tzinfo=dt.UTC)],
                pa.timestamp("us", tz="UTC"),
            ),
            "day": pa.array([dt.date(2026, 2, 28), None], pa.date32()),
        }
    )
    make_table(wh, unique_name, data)
    result = sync(wh, unique_name, client=client)
    assert (result.sent, result.failed) == (2, 0)
    held = server_profiles(segment_server)
    assert held["1"] == {
        "big_int": 2**53 + 1,
        "small_int": 3,
        "ratio": 0.1,
        "ratio32": 0.1,  # float32 keeps its short form, not 0.10000000149011612
        "money": 12.34,
        "flag": True,
        "name": "Zoë «naïve» 東京 😀",
        "naive_at": "2026-03-01T12:30:15.250Z",  # naive = UTC
        "zoned_at": "2026-03-01T12:00:00.000Z",  # converted to UTC
        "day": "2026-02-28T00:00:00.000Z",
    }
    assert held["2"]["money"] == 5 and held["2"]["name"] == 'quote " and \\ backslash'
    assert held["2"]["small_int"] is None and held["2"]["day"] is None
    assert segment_server.rejected == []
    assert sync(wh, unique_name, client=client).sent == 0  # every type compares equal again


def _bad_table() -> pa.Table:
    n = 6
    huge = "😀" * 9_000  # ~9k characters: under the 16 KB estimate, over 32 KB as Segment counts
    return pa.table(
        {
            "user_id": [f"u{i}" for i in range(n)],
            "score": pa.array([0.5, float("nan"), float("inf"), 0.25, 0.75, 1.0]),
            "tags": pa.array([None, None, None, ["a", "b"], None, None], pa.list_(pa.string())),
            "note": pa.array(["ok", "ok", "ok", "ok", huge, "ok"]),
        }
    )


def test_bad_values_refuse_the_publish_and_name_the_column(duckdb_wh, unique_name, client):
    make_table(duckdb_wh, unique_name, _bad_table())
    with pytest.raises(SyncRefused) as info:
        sync(duckdb_wh, unique_name, client=client)
    message = str(info.value)
    assert "finite_numbers" in message and "score" in message
    assert "no_nested_types" in message and "tags" in message
    assert not info.value.verdicts.validation_ok
    report = dry_run(duckdb_wh, unique_name)
    assert report.problems() and report.problems(allow_invalid=True) == []


def test_with_allow_invalid_each_bad_row_is_converted_or_reported(
    duckdb_wh, unique_name, segment_server, client
):
    make_table(duckdb_wh, unique_name, _bad_table())
    report = dry_run(duckdb_wh, unique_name)
    assert report.rejected == 2  # the array row and the oversize row, known before sending
    assert {ident for ident, _ in report.rejections} == {"u3", "u4"}

    result = sync(duckdb_wh, unique_name, client=client, allow_invalid=True)
    assert (result.sent, result.failed, result.status) == (4, 2, "partial")
    held = server_profiles(segment_server)
    # NaN and infinity are not JSON: published as null (the contract report flagged them)
    assert held["u1"] == {"score": None, "tags": None, "note": "ok"}
    assert held["u2"]["score"] is None and held["u0"]["score"] == 0.5
    assert "u3" not in held and "u4" not in held
    assert segment_server.rejected == []

    failed = failed_rows(duckdb_wh, run_id=result.run_id).set_index("identifier")
    assert "arrays are not supported" in failed.loc["u3", "reason"]
    assert "'tags'" in failed.loc["u3", "reason"]
    assert "limit is 32768" in failed.loc["u4", "reason"]
    assert failed.loc["u4", "payload_bytes"] > 32_768
    # the oversize message is counted the way Segment counts it
    assert len(json.dumps({"note": "😀" * 9_000}).encode()) > 32_768


def test_a_table_whose_every_row_is_refused_is_recorded_page_by_page(
    duckdb_wh, unique_name, segment_server, client
):
    n = 3_000
    tags = pa.array([["a", "b"]] * n, pa.list_(pa.string()))
    ids = [f"u{i}" for i in range(n)]
    make_table(duckdb_wh, unique_name, pa.table({"user_id": ids, "tags": tags}))
    result = sync(
        duckdb_wh, unique_name, client=client, allow_invalid=True, page_rows=100, commit_rows=500
    )
    assert (result.status, result.sent, result.failed, result.requests) == ("failed", 0, n, 0)
    assert segment_server.snapshot()["requests"] == 0
    assert len(failed_rows(duckdb_wh, run_id=result.run_id, limit=None)) == n
