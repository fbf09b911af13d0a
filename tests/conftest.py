"""Shared fixtures: a small real sample warehouse on DuckDB and on a real PostgreSQL.

Suites that need something a fresh machine may lack (PostgreSQL, Chromium, Java) skip with a reason
on a user's machine; `.ci/run` sets SQLTRAITS_REQUIRE_ALL=1, which turns those skips into failures.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sqltraits_kit.modelling.registry import Registry
from sqltraits_kit.publishing.standin import FakeSegmentServer
from sqltraits_kit.warehouse import Warehouse, connect, copy_tables
from tests.support import POSTGRES_URL, SAMPLE_CUSTOMERS, SAMPLE_SEED, skip_or_fail
from tests.support.models import save_models
from tests.support.segment import PROFILE_TOKEN, SPACE_ID, WRITE_KEY


@pytest.fixture(scope="session")
def sample_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo warehouse built once per session (read it, copy it to write).

    With ``SQLTRAITS_TEST_SAMPLE_DIR`` set (the mutation runs set it: one pytest session per
    mutant), it is built once into that folder, named by the sample code's hash, and reused.
    """
    from sqltraits_kit.warehouse import sample

    cache = os.environ.get("SQLTRAITS_TEST_SAMPLE_DIR")
    if cache:
        code = Path(sample.__file__)
        files = sorted(code.parent.glob("*.py")) if code.name == "__init__.py" else [code]
        digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:12]
        path = Path(cache) / f"sample-{SAMPLE_CUSTOMERS}-{SAMPLE_SEED}-{digest}.duckdb"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            part = path.with_suffix(f".{uuid.uuid4().hex}.part")
            sample.build_sample(part, customers=SAMPLE_CUSTOMERS, seed=SAMPLE_SEED)
            part.replace(path)
        return path
    path = tmp_path_factory.mktemp("sample") / "sample.duckdb"
    sample.build_sample(path, customers=SAMPLE_CUSTOMERS, seed=SAMPLE_SEED)
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


# --------------------------------------------------------------------------- the Segment stand-in


@pytest.fixture
def segment_server() -> Iterator[FakeSegmentServer]:
    """A fresh strict Segment stand-in per test (Tracking and Profile APIs)."""
    with FakeSegmentServer(
        write_keys=(WRITE_KEY,), profile_tokens=(PROFILE_TOKEN,), space_id=SPACE_ID
    ) as server:
        yield server


@pytest.fixture
def fast_sleeps() -> list[float]:
    """A fake ``sleep`` that records instead of sleeping (backoff tests stay instant)."""
    return []


# --------------------------------------------------------------------------- models


@pytest.fixture(scope="session")
def trained(sample_file: Path, tmp_path_factory) -> tuple[Registry, dict[str, str]]:
    """Models fitted once on the sample (the same data both warehouses hold).

    With ``SQLTRAITS_TEST_MODELS_DIR`` set (the mutation runs of modules above modelling, one
    pytest session per mutant), they are fitted once into that folder and reused.
    """
    cache = os.environ.get("SQLTRAITS_TEST_MODELS_DIR")
    if cache:
        import sqltraits_kit.modelling as modelling

        code = sorted(Path(modelling.__file__).parent.glob("*.py"))
        digest = hashlib.sha256(b"".join(f.read_bytes() for f in code)).hexdigest()[:12]
        key = f"{sample_file.stem}-{digest}"
        refs_file = Path(cache) / f"{key}.refs.json"
        registry = Registry(Path(cache) / key)
        if refs_file.exists():
            return registry, json.loads(refs_file.read_text())
    else:
        registry = Registry(tmp_path_factory.mktemp("models"))
    wh = connect(f"duckdb:///{sample_file}", read_only=True)
    try:
        refs = save_models(wh, registry)
    finally:
        wh.close()
    if cache:
        refs_file.write_text(json.dumps(refs))
    return registry, refs


# --------------------------------------------------------------------------- Spark (local mode)

#: The sample Spark holds: small, because Spark's fixed cost per query dominates on two cores.
SPARK_CUSTOMERS, SPARK_SEED = 400, 5


@pytest.fixture(scope="session")
def spark_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The DuckDB sample the Spark warehouse is loaded from (the reference for comparisons)."""
    from sqltraits_kit.warehouse.sample import build_sample

    path = tmp_path_factory.mktemp("spark_sample") / "s.duckdb"
    build_sample(path, customers=SPARK_CUSTOMERS, seed=SPARK_SEED)
    return path


@pytest.fixture(scope="session")
def spark_wh(tmp_path_factory: pytest.TempPathFactory, spark_sample: Path) -> Iterator[Warehouse]:
    """Ibis' PySpark backend on a local[2] session, holding the sample: one per test session
    (a session costs tens of seconds to start). Needs Java; skips without it unless
    SQLTRAITS_REQUIRE_ALL=1."""
    import os
    import sys

    if shutil.which("java") is None:
        skip_or_fail("PySpark needs Java (Debian: apt-get install openjdk-17-jre-headless)")
    try:
        import ibis
        from pyspark.sql import SparkSession
    except ImportError:
        skip_or_fail("pyspark is not installed (pip install -e '.[pyspark]')")
    where = tmp_path_factory.mktemp("spark")
    # Python workers (mapInArrow) must run this interpreter: it has scikit-learn and the kit.
    previous = os.environ.get("PYSPARK_PYTHON")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("sqltraits-kit-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # The kit writes UTC and reads Spark's zoneless timestamps back as UTC.
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.warehouse.dir", str(where / "warehouse"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={where}")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    wh = Warehouse(con=ibis.pyspark.connect(spark), url="pyspark://local[2]")
    src = connect(f"duckdb://{spark_sample}", read_only=True)
    copy_tables(src, wh, tables=["users", "order_completed", "tracks", "pages"])
    src.close()
    yield wh
    spark.stop()
    if previous is None:
        os.environ.pop("PYSPARK_PYTHON", None)
    else:
        os.environ["PYSPARK_PYTHON"] = previous
