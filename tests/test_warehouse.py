from __future__ import annotations

import subprocess
import sys
import textwrap

import ibis
import pytest

from sqltraits_kit.errors import (
    ConfigError,
    UnknownTableError,
    WarehouseConnectionError,
    WarehouseLockedError,
)
from sqltraits_kit.settings import Settings
from sqltraits_kit.warehouse import (
    SAMPLE_TABLES,
    check_user_warehouse_url,
    connect,
    copy_tables,
    redact_url,
)
from tests.support import SAMPLE_CUSTOMERS


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


# --------------------------------------------------------------------------- issue 12: URLs


def test_redact_url_hides_passwords_in_query_parameters_too():
    url = "postgres://u:secret@db:5432/x?password=secret2&sslmode=require"
    shown = redact_url(url)
    assert "secret" not in shown
    assert shown.startswith("postgres://u:••••@db:5432/x?") and "sslmode=require" in shown
    assert redact_url("duckdb:///a.duckdb?token=abc") == "duckdb:///a.duckdb?token=••••"
    assert redact_url("postgres://u@db/x?sslmode=require") == "postgres://u@db/x?sslmode=require"


def test_a_missing_duckdb_file_is_an_error_unless_created_on_purpose(tmp_path):
    path = tmp_path / "typo.duckdb"
    with pytest.raises(WarehouseConnectionError, match=r"no such warehouse file .*typo\.duckdb"):
        connect(f"duckdb:///{path}")
    assert not path.exists()
    connect(f"duckdb:///{path}", create=True).close()
    assert path.exists()


@pytest.mark.parametrize(
    "options", ["allow_unsigned_extensions=true", "temp_directory=/tmp/x", "threads=1"]
)
def test_duckdb_url_options_need_the_operators_permission(sample_file, tmp_path, options):
    path = tmp_path / "wh.duckdb"
    path.write_bytes(sample_file.read_bytes())
    name = options.split("=")[0]
    with pytest.raises(WarehouseConnectionError, match=rf"options \({name}\).*ALLOW_WAREHOUSE"):
        connect(f"duckdb:///{path}?{options}")
    if name == "threads":  # allowed by the operator, a harmless option connects
        allowed = Settings(allow_warehouse_url_options=True)
        wh = connect(f"duckdb:///{path}?{options}", settings=allowed)
        try:
            assert wh.row_counts(["users"])["users"] == SAMPLE_CUSTOMERS
        finally:
            wh.close()


def test_check_user_warehouse_url(sample_file, tmp_path):
    local = Settings()
    good = f"duckdb:///{sample_file}"
    assert check_user_warehouse_url(f"  {good} ", settings=local) == good
    assert check_user_warehouse_url("postgres://u@db:5432/x", settings=local).startswith("post")
    refusals = [
        (local, f"duckdb:///{tmp_path}/typo.duckdb", r"no such warehouse file"),
        (local, f"{good}?allow_unsigned_extensions=true", r"allow_unsigned_extensions"),
        (local, "postgres://u@db/x?sslkey=/etc/ssl/private/k", r"options \(sslkey\)"),
        (local, "sqlite:///etc/passwd", r"not a DuckDB or PostgreSQL URL"),
        (local, "duckdb://md:my_db", r"md databases are not offered"),
        (local, "  ", r"enter a warehouse URL"),
        (Settings(allow_user_warehouse_urls=False), good, r"turned off on this server"),
    ]
    for settings, url, message in refusals:
        with pytest.raises(ConfigError, match=message):
            check_user_warehouse_url(url, settings=settings)
    # unset: allowed for a local single-user app only
    with pytest.raises(ConfigError, match="turned off"):
        check_user_warehouse_url(good, settings=local, local=False)
    team = Settings(allow_user_warehouse_urls=True)
    assert check_user_warehouse_url(good, settings=team, local=False) == good
    with pytest.raises(ConfigError, match=r"options \(a\)") as info:
        check_user_warehouse_url("postgres://u:s3cret@db/x?a=1", settings=local)
    assert "s3cret" not in str(info.value)


# --------------------------------------------------------------------------- idle app, writer

_WRITER = textwrap.dedent(
    """
    import sys, duckdb
    con = duckdb.connect(sys.argv[1])
    con.execute("CREATE OR REPLACE TABLE from_scheduler AS SELECT 42 AS x")
    con.close()
    print("wrote")
    """
)


def _scheduled_write(path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _WRITER, str(path)], capture_output=True, text=True, timeout=60
    )


def test_an_idle_app_does_not_block_a_scheduled_run(sample_file, tmp_path):
    path = tmp_path / "shared.duckdb"
    path.write_bytes(sample_file.read_bytes())
    app = connect(f"duckdb:///{path}", read_only=True, hold=False)
    try:
        with app.reading():
            users = app.table("users")
            busy = _scheduled_write(path)  # while the app reads, the file is locked
        assert busy.returncode != 0 and "lock" in busy.stderr.lower()
        idle = _scheduled_write(path)  # an idle app holds no lock
        assert idle.returncode == 0, idle.stderr
        with app.reading():
            assert app.has_table("from_scheduler")
            assert int(users.count().execute()) == SAMPLE_CUSTOMERS  # built before, still valid
        with app.writing():
            assert not app.read_only
            app.con.create_table("from_app", obj=app.table("users").limit(2))
        assert app.read_only
        again = _scheduled_write(path)
        assert again.returncode == 0, again.stderr
        with app.reading():
            assert app.row_counts(["from_app"]) == {"from_app": 2}
    finally:
        app.close()


def test_writing_reopens_read_write_briefly_then_read_only(sample_file, tmp_path):
    path = tmp_path / "held.duckdb"
    path.write_bytes(sample_file.read_bytes())
    wh = connect(f"duckdb:///{path}", read_only=True)
    try:
        users = wh.table("users")
        with pytest.raises(Exception, match=r"(?i)read-only"):
            wh.con.create_table("nope", obj=users.limit(1))
        with wh.writing():
            wh.con.create_table("written", obj=users.limit(3))
        assert wh.read_only
        with pytest.raises(Exception, match=r"(?i)read-only"):
            wh.con.create_table("nope", obj=users.limit(1))
        assert wh.row_counts(["written"]) == {"written": 3}
        assert _scheduled_write(path).returncode != 0  # held read-only: a reader's shared lock
    finally:
        wh.close()


def test_a_misspelled_warehouse_type_names_the_right_one():
    with pytest.raises(
        WarehouseConnectionError,
        match=r"unknown warehouse type 'postgress'; did you mean postgres://",
    ):
        connect("postgress://someone@127.0.0.1:5432/test")


def test_a_missing_driver_says_what_to_install():
    with pytest.raises(
        WarehouseConnectionError, match=r"pip install 'ibis-framework\[snowflake\]'"
    ) as info:
        connect("snowflake://user:s3cretpw@account/db/schema")
    assert "s3cretpw" not in str(info.value)


def test_remembering_tables_lists_once_per_new_name_and_forgets_a_dropped_table(
    duckdb_wh, unique_name, monkeypatch
):
    listings = []
    list_tables = duckdb_wh.con.list_tables

    def counting(*args, **kwargs):
        listings.append(1)
        return list_tables(*args, **kwargs)

    monkeypatch.setattr(duckdb_wh.con, "list_tables", counting)
    with duckdb_wh.remembering_tables():
        assert duckdb_wh.has_table("users") and duckdb_wh.has_table("users")
        assert len(listings) == 1  # seen once: not listed again
        assert not duckdb_wh.has_table(unique_name)
        assert len(listings) == 2  # a name not seen is always listed afresh
        duckdb_wh.con.create_table(unique_name, schema=ibis.schema({"x": "int64"}))
        assert duckdb_wh.has_table(unique_name)
        duckdb_wh.con.drop_table(unique_name)
        duckdb_wh.forget_table(unique_name)
        assert not duckdb_wh.has_table(unique_name)
    listings.clear()
    assert duckdb_wh.has_table("users") and duckdb_wh.has_table("users")
    assert len(listings) == 2  # outside the block: every call lists
