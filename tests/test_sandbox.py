"""Issue 12: user SQL runs in a sandbox the engine enforces, within a time and memory budget.

Each refusal is tested twice where it applies: the second line (sqlglot names the function,
nothing runs) and the engine's own lock (the same statement sent past the parser still fails).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from sqltraits_kit.cli import main
from sqltraits_kit.errors import ConfigError
from sqltraits_kit.settings import Settings
from sqltraits_kit.traits.traitset import TraitSet, check_read_only_query, query_table, resolve
from sqltraits_kit.warehouse import connect
from sqltraits_kit.warehouse.sandbox import QueryLimitError, read_only_transaction, time_limit

SECRET = "wk_live_do_not_leak_0123456789"


@pytest.fixture
def secrets_file(tmp_path, monkeypatch) -> Path:
    """A `.streamlit/secrets.toml` holding a key, in the working directory as the app has it."""
    folder = tmp_path / ".streamlit"
    folder.mkdir()
    path = folder / "secrets.toml"
    path.write_text(f'SEGMENT_WRITE_KEY = "{SECRET}"\n')
    monkeypatch.chdir(tmp_path)
    return path


@pytest.fixture
def listener():
    """A TCP port on 127.0.0.1 that records whether anything tried to connect to it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.setblocking(False)
    yield server
    server.close()


def _contacted(server: socket.socket) -> bool:
    try:
        conn, _ = server.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


READS = [
    ("read_text", "SELECT content AS key, 'u1' AS user_id FROM read_text('{path}')"),
    ("read_blob", "SELECT 'u1' AS user_id, content FROM read_blob('{path}')"),
    ("read_csv", "SELECT * FROM read_csv('{path}')"),
    ("read_csv_auto", "SELECT * FROM read_csv_auto('{path}')"),
    ("read_parquet", "SELECT * FROM read_parquet(['{path}'])"),
    ("read_json_auto", "SELECT * FROM read_json_auto('{path}')"),
    ("glob", "SELECT file AS user_id FROM glob('*')"),
    ("read_text", "SELECT u.id AS user_id, (SELECT content FROM read_text('{path}')) FROM users u"),
    ("query", "SELECT * FROM query('SELECT 1')"),
]


@pytest.mark.parametrize(("function", "sql"), READS)
def test_file_reading_functions_are_refused_by_name(wh, secrets_file, function, sql):
    query = sql.format(path=secrets_file)
    expected = rf"calls {function}\(\).*refused, nothing was run"
    if wh.backend == "postgres" and function == "glob":
        expected = "not valid SQL"  # GLOB is an operator in PostgreSQL's grammar (sqlglot)
    with pytest.raises(ConfigError, match=expected):
        query_table(wh, query)


def test_a_trait_set_reading_secrets_is_refused_before_anything_runs(wh, secrets_file):
    query = f"SELECT 'u1' AS user_id, content AS key FROM read_text('{secrets_file}')"
    with pytest.raises(ConfigError, match=r"read_text\(\)") as info:
        resolve(wh, TraitSet(name="leak", query=query))  # refused when the spec is built
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM '.streamlit/secrets.toml'",
        'SELECT * FROM "data.csv"',
        'SELECT * FROM "s3://bucket/x.parquet"',
    ],
)
def test_a_table_named_like_a_file_is_refused(sql):
    with pytest.raises(ConfigError, match="names a file or URL"):
        check_read_only_query(sql, dialect="duckdb")


@pytest.mark.parametrize(
    ("sql", "what"),
    [
        ("INSTALL httpfs", "INSTALL"),
        ("LOAD httpfs", "LOAD"),
        ("ATTACH 'other.duckdb' AS o", "ATTACH"),
        ("COPY users TO 'out.csv'", "COPY"),
        ("PRAGMA version", "PRAGMA"),
        ("SET memory_limit = '100GB'", "SET"),
    ],
)
def test_statements_that_change_the_engine_are_refused(sql, what):
    with pytest.raises(ConfigError, match=rf"not {what}\b"):
        check_read_only_query(sql, dialect="duckdb")


def test_read_csv_over_http_is_refused_without_a_network_attempt(wh, listener):
    port = listener.getsockname()[1]
    with pytest.raises(ConfigError, match=r"read_csv\(\)"):
        query_table(wh, f"SELECT * FROM read_csv('http://127.0.0.1:{port}/x.csv')")
    assert not _contacted(listener)


def test_duckdb_engine_refuses_files_urls_and_extensions_past_the_parser(
    duckdb_wh, secrets_file, listener
):
    """The parser is the second line: the engine itself refuses what it would have let by."""
    raw = duckdb_wh.con.con
    port = listener.getsockname()[1]
    refused = [
        f"SELECT * FROM read_text('{secrets_file}')",
        f"SELECT * FROM read_csv('http://127.0.0.1:{port}/x.csv')",
        f"SELECT * FROM '{secrets_file}'",
        "SELECT * FROM glob('/*')",
        f"COPY users TO '{secrets_file.parent / 'out.csv'}'",
        f"ATTACH '{secrets_file.parent / 'other.duckdb'}' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
    ]
    for sql in refused:
        # a file named as a table is not even looked up: without external access it is no table
        with pytest.raises(Exception, match=r"(?i)permission|disabled|does not exist"):
            raw.execute(sql).fetchall()
    for sql in ("SET enable_external_access = true", "SET memory_limit = '100GB'"):
        with pytest.raises(Exception, match="configuration has been locked"):
            raw.execute(sql)
    assert not _contacted(listener)
    assert not (secrets_file.parent / "out.csv").exists()
    # the warehouse itself still works: reads, writes, Ibis memtables
    assert duckdb_wh.row_counts(["users"])["users"] > 0
    duckdb_wh.con.create_table("t_after", obj=duckdb_wh.table("users").limit(3))
    assert duckdb_wh.row_counts(["t_after"]) == {"t_after": 3}


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("function", "sql"),
    [
        ("lo_from_bytea", "SELECT lo_from_bytea(0, 'secret'::bytea) AS user_id"),
        ("lo_export", "SELECT lo_export(12345, '/tmp/sqltraits_pwned') AS user_id"),
        ("lo_import", "SELECT lo_import('/etc/hostname') AS user_id"),
        ("set_config", "SELECT set_config('statement_timeout', '1', false) AS user_id"),
        ("pg_read_file", "SELECT pg_read_file('/etc/hostname') AS user_id"),
        ("pg_ls_dir", "SELECT * FROM pg_ls_dir('.') AS t(user_id)"),
        ("pg_stat_file", "SELECT (pg_stat_file('/etc/hostname')).size AS user_id"),
        ("query_to_xml", "SELECT query_to_xml('select lo_unlink(1)', true, false, '') AS x"),
    ],
)
def test_postgres_server_side_file_and_config_functions_are_refused(postgres_wh, function, sql):
    before = _setting(postgres_wh, "statement_timeout")
    with pytest.raises(ConfigError, match=rf"calls {function}\(\)"):
        query_table(postgres_wh, sql)
    # nothing ran: the session's settings are as they were and the next query works
    assert _setting(postgres_wh, "statement_timeout") == before == "2min"
    assert postgres_wh.row_counts(["users"])["users"] > 0
    assert not Path("/tmp/sqltraits_pwned").exists()


def _setting(wh, name: str) -> str:
    with wh.con.con.cursor() as cur:
        cur.execute(f"SHOW {name}")  # a fixed name from the test, not input
        return cur.fetchone()[0]


@pytest.mark.postgres
def test_postgres_read_only_transaction_undoes_what_the_parser_would_let_by(postgres_wh):
    """Past the parser, the READ ONLY transaction refuses writes and rolls the rest back.

    (PostgreSQL lets large-object and set_config calls run in a read-only transaction; the
    rollback undoes them, and lo_export needs a role the kit's role must not have.)
    """
    import psycopg

    raw = postgres_wh.con.con
    with read_only_transaction(postgres_wh), raw.cursor() as cur:
        cur.execute("SELECT lo_from_bytea(0, 'x'::bytea)")
        cur.execute("SELECT set_config('statement_timeout', '1', false)")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="read-only"):
            cur.execute("CREATE TABLE t_written_by_a_query (a int)")
    assert _setting(postgres_wh, "statement_timeout") == "2min"
    assert not postgres_wh.has_table("t_written_by_a_query")
    with raw.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_largeobject_metadata")
        assert cur.fetchone()[0] == 0
    assert postgres_wh.row_counts(["users"])["users"] > 0


# --------------------------------------------------------------------------- limits

CARTESIAN = (
    "SELECT u.id AS user_id, sum(o.revenue + length(p.id)) AS score "
    "FROM users u, order_completed o, pages p GROUP BY u.id"
)


def _limited(url: str, **changes):
    return connect(url, settings=Settings(query_timeout_s=1, **changes))


def test_a_cartesian_query_is_stopped_by_the_time_limit(wh, tmp_path):
    url = wh.url
    if wh.backend == "duckdb":  # the fixture holds the file: a limited copy of it
        wh.close()
        copy = tmp_path / "limited.duckdb"
        copy.write_bytes(Path(url.split(":///", 1)[1]).read_bytes())
        url = f"duckdb:///{copy}"
    limited = _limited(url)
    try:
        table = query_table(limited, CARTESIAN)
        with (
            pytest.raises(QueryLimitError, match=r"time budget of 1 s"),
            time_limit(limited),
        ):
            table.count().execute()
        # the connection is usable afterwards
        assert limited.row_counts(["users"])["users"] > 0
    finally:
        limited.close()


def test_the_cli_stops_a_long_query_with_one_line_and_exit_2(duckdb_wh, capsys, monkeypatch):
    url = duckdb_wh.url
    duckdb_wh.close()
    monkeypatch.setenv("SQLTRAITS_QUERY_TIMEOUT_S", "1")
    code = main(["validate", "--db", url, "--query", CARTESIAN])
    captured = capsys.readouterr()
    assert code == 2
    assert "time budget of 1 s" in captured.err and "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert captured.out == ""


def test_the_cli_refuses_read_text_with_exit_2_and_shows_nothing(duckdb_wh, secrets_file, capsys):
    url = duckdb_wh.url
    duckdb_wh.close()
    sql = f"SELECT 'u1' AS user_id, content FROM read_text('{secrets_file}')"
    code = main(["validate", "--db", url, "--query", sql, "--json"])
    captured = capsys.readouterr()
    assert code == 2
    assert "read_text()" in captured.err
    assert captured.out == "" and SECRET not in captured.err


def test_duckdb_memory_budget_is_set_and_locked(tmp_path):
    path = tmp_path / "m.duckdb"
    wh = connect(f"duckdb:///{path}", create=True, settings=Settings(query_memory_limit="64MB"))
    try:
        raw = wh.con.con
        assert raw.execute("SELECT current_setting('memory_limit')").fetchone()[0] in (
            "61.0 MiB",
            "64.0 MiB",
            "64.0 MB",
        )
        # a list aggregate cannot spill: it must hold every value at once
        hungry = "SELECT list(repeat('x', 100) || i) FROM range(3000000) t(i)"
        with pytest.raises(QueryLimitError, match=r"memory budget of 64MB"), time_limit(wh):
            raw.execute(hungry).fetchall()
        assert raw.execute("SELECT 1").fetchone() == (1,)
    finally:
        wh.close()


def test_limits_come_from_the_environment():
    s = Settings.from_env(
        {"SQLTRAITS_QUERY_TIMEOUT_S": "7.5", "SQLTRAITS_QUERY_MEMORY_LIMIT": "512MB"}
    )
    assert (s.query_timeout_s, s.query_memory_limit) == (7.5, "512MB")
    assert (Settings().query_timeout_s, Settings().query_memory_limit) == (120.0, "2GB")
    with pytest.raises(ValueError, match="query_memory_limit"):
        Settings(query_memory_limit="lots")
    with pytest.raises(ValueError, match="SQLTRAITS_QUERY_TIMEOUT_S must be a number"):
        Settings.from_env({"SQLTRAITS_QUERY_TIMEOUT_S": "soon"})


def test_a_dry_run_of_a_long_query_is_stopped_by_the_time_limit(wh, tmp_path):
    from sqltraits_kit.publishing.sync import Query, sync

    url = wh.url
    if wh.backend == "duckdb":
        wh.close()
        copy = tmp_path / "limited.duckdb"
        copy.write_bytes(Path(url.split(":///", 1)[1]).read_bytes())
        url = f"duckdb:///{copy}"
    limited = _limited(url)
    try:
        with pytest.raises(QueryLimitError, match=r"time budget of 1 s"):
            sync(limited, Query(CARTESIAN), dry_run=True)
        assert limited.row_counts(["users"])["users"] > 0
    finally:
        limited.close()


def test_two_warehouses_on_one_duckdb_file_in_one_process(sample_file):
    """DuckDB shares one locked instance per file and process (the app's sessions do this)."""
    from sqltraits_kit.warehouse import connect

    first = connect(f"duckdb:///{sample_file}", read_only=True)
    second = connect(f"duckdb:///{sample_file}", read_only=True)
    try:
        assert second.table("users").count().execute() == 2_000
        tz = second.con.con.execute("SELECT current_setting('TimeZone')").fetchone()[0]
        assert tz == "UTC"
        assert second.scratch_dir == first.scratch_dir
        with pytest.raises(Exception, match="file system operations are disabled"):
            second.con.con.execute("SELECT * FROM read_text('/etc/hostname')").fetchall()
        second.close()
        assert first.table("users").count().execute() == 2_000
    finally:
        first.close()
