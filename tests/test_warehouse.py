from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from sqltraits_kit.errors import (
    UnknownTableError,
    WarehouseConnectionError,
    WarehouseLockedError,
)
from sqltraits_kit.warehouse import SAMPLE_TABLES, connect, copy_tables, redact_url
from tests.conftest import SAMPLE_CUSTOMERS


def test_lists_the_sample_tables(wh):
    assert set(SAMPLE_TABLES) <= set(wh.tables())


def test_row_counts_match_between_backends(wh, sample_file):
    ref = connect(f"duckdb:///{sample_file}", read_only=True)
    try:
        assert wh.row_counts(SAMPLE_TABLES) == ref.row_counts(SAMPLE_TABLES)
    finally:
        ref.close()
    assert wh.row_counts(["users"]) == {"users": SAMPLE_CUSTOMERS}


def test_describe_and_preview(wh):
    cols = dict(wh.describe("users"))
    assert {"id", "email", "name", "created_at", "plan", "country", "account_id"} <= set(cols)
    assert cols["created_at"].startswith("timestamp")
    df = wh.preview("order_completed", limit=5)
    assert len(df) == 5
    assert list(df.columns)[:4] == ["id", "user_id", "timestamp", "revenue"]


def test_activity_over_time_is_counted_in_the_warehouse(wh):
    df = wh.activity_over_time(grain="month")
    assert set(df["table"]) == {"order_completed", "tracks", "pages"}
    totals = df.groupby("table")["events"].sum().to_dict()
    assert totals == wh.row_counts(["order_completed", "tracks", "pages"])
    # ~two years of monthly buckets
    assert 24 <= df["period"].nunique() <= 26


def test_unknown_table_and_column_are_named(wh):
    with pytest.raises(UnknownTableError, match=r"'nope'.*has: accounts"):
        wh.table("nope")
    users = wh.table("users")
    with pytest.raises(UnknownTableError, match="'revenue' not found in users"):
        wh.column(users, "revenue", table_name="users")


def test_bad_grain_is_refused(wh):
    with pytest.raises(ValueError, match="grain"):
        wh.activity_over_time(grain="fortnight")


def test_redact_url_hides_password():
    assert redact_url("postgres://bob:hunter2@db:5432/x") == "postgres://bob:••••@db:5432/x"
    assert redact_url("duckdb:///a.duckdb") == "duckdb:///a.duckdb"


def test_bad_urls_give_clear_errors(tmp_path):
    with pytest.raises(WarehouseConnectionError, match="not a warehouse URL"):
        connect("just-a-path.duckdb")
    with pytest.raises(WarehouseConnectionError, match=r"no such warehouse file .*missing\.duckdb"):
        connect(f"duckdb:///{tmp_path}/missing.duckdb", read_only=True)
    with pytest.raises(WarehouseConnectionError, match="could not connect") as info:
        connect("postgres://someone:s3cret@127.0.0.1:1/nothing")
    assert "s3cret" not in str(info.value)


def test_default_connect_builds_the_sample_once(tmp_path):
    path = tmp_path / "sample.duckdb"
    messages = []
    wh = connect(sample_path=path, sample_customers=300, progress=lambda m, f: messages.append(m))
    assert path.exists() and messages and messages[-1] == "done"
    assert wh.row_counts(["users"]) == {"users": 300}
    wh.close()
    messages.clear()
    connect(sample_path=path, read_only=True, progress=lambda m, f: messages.append(m)).close()
    assert messages == []


def test_lock_held_by_another_process_is_explained(sample_file, tmp_path):
    path = tmp_path / "locked.duckdb"
    path.write_bytes(sample_file.read_bytes())
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import duckdb, sys, time
                con = duckdb.connect({str(path)!r})
                print("locked", flush=True)
                sys.stdin.readline()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(WarehouseLockedError, match="locked by another process"):
            connect(f"duckdb:///{path}")
    finally:
        holder.communicate("\n", timeout=30)


@pytest.mark.postgres
def test_copy_tables_to_postgres_streams_in_batches(sample_file, postgres_url):
    src = connect(f"duckdb:///{sample_file}", read_only=True)
    dest = connect(postgres_url)
    try:
        steps = []
        copied = copy_tables(
            src, dest, tables=["accounts"], batch_rows=64, progress=lambda m, f: steps.append(f)
        )
        assert copied == {"accounts": src.row_counts(["accounts"])["accounts"]}
        assert len(steps) > 3  # one progress step per batch
        a = src.table("accounts").order_by("id").to_pandas()
        b = dest.table("accounts").order_by("id").to_pandas()
        assert a.equals(b)
    finally:
        src.close()
        dest.close()
