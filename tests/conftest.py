"""Shared fixtures: a small real sample warehouse on DuckDB and on a real PostgreSQL.

Suites that need something a fresh machine may lack (PostgreSQL, Chromium, Java) skip with a reason
on a user's machine; `.ci/run` sets SQLTRAITS_REQUIRE_ALL=1, which turns those skips into failures.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from sqltraits_kit.warehouse import Warehouse, connect, copy_tables

ROOT = Path(__file__).resolve().parents[1]
REQUIRE_ALL = os.environ.get("SQLTRAITS_REQUIRE_ALL", "") not in ("", "0", "false")
POSTGRES_URL = os.environ.get(
    "SQLTRAITS_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"
)
SAMPLE_CUSTOMERS = 2_000
SAMPLE_SEED = 3


def skip_or_fail(reason: str) -> None:
    """Skip on a user's machine; fail in CI (SQLTRAITS_REQUIRE_ALL=1), where it must run."""
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (SQLTRAITS_REQUIRE_ALL=1 requires this suite)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sample_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo warehouse built once per session (read it, copy it to write)."""
    from sqltraits_kit.warehouse.sample import build_sample

    path = tmp_path_factory.mktemp("sample") / "sample.duckdb"
    build_sample(path, customers=SAMPLE_CUSTOMERS, seed=SAMPLE_SEED)
    return path


@pytest.fixture
def duckdb_wh(sample_file: Path, tmp_path: Path) -> Warehouse:
    """A writable copy of the sample on DuckDB, fresh for each test."""
    path = tmp_path / "wh.duckdb"
    shutil.copyfile(sample_file, path)
    wh = connect(f"duckdb:///{path}")
    yield wh
    wh.close()


def _postgres_admin():
    try:
        import psycopg
    except ImportError:
        return None, "psycopg is not installed (pip install -e '.[postgres]')"
    try:
        return psycopg.connect(_libpq_url(POSTGRES_URL), autocommit=True, connect_timeout=3), None
    except Exception as exc:  # the reason is shown in the skip message
        return None, f"PostgreSQL not reachable at {POSTGRES_URL}: {type(exc).__name__}: {exc}"


def _libpq_url(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


@pytest.fixture(scope="session")
def postgres_url(sample_file: Path) -> str:
    """A fresh PostgreSQL database for this session, holding the sample; dropped at the end."""
    admin, reason = _postgres_admin()
    if admin is None:
        skip_or_fail(reason)
    name = f"sqltraits_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')  # generated name, not user input
    base, _, _db = POSTGRES_URL.rpartition("/")
    url = f"{base}/{name}"
    src = connect(f"duckdb:///{sample_file}", read_only=True)
    dest = connect(url)
    copy_tables(src, dest)
    src.close()
    dest.close()
    yield url
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def postgres_wh(postgres_url: str) -> Warehouse:
    wh = connect(postgres_url)
    yield wh
    wh.close()


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def wh(request: pytest.FixtureRequest) -> Warehouse:
    """The same test on DuckDB and on PostgreSQL (the sample loaded into both)."""
    return request.getfixturevalue(f"{request.param}_wh")


@pytest.fixture
def unique_name() -> str:
    """A table name no other test uses (PostgreSQL's database is shared within a session)."""
    return f"t_{uuid.uuid4().hex[:12]}"
