"""The same feature, label and scoring code on a distributed engine: PySpark in local mode.

Spark runs on the JVM: the suite skips without Java or pyspark on a user's machine and is required
in CI (SQLTRAITS_REQUIRE_ALL=1).
"""

from __future__ import annotations

import datetime as dt
import shutil

import pandas as pd
import pytest

from sqltraits_kit.modelling.features import build_features, build_labels
from sqltraits_kit.warehouse import Warehouse, connect, copy_tables
from sqltraits_kit.warehouse.sample import build_sample
from tests.support import skip_or_fail

pytestmark = [pytest.mark.pyspark, pytest.mark.slow]

AS_OF = dt.datetime(2026, 7, 1)
# Spark keeps timestamps to the second in its epoch arithmetic; DuckDB keeps microseconds.
DAYS_ATOL = 1e-4


@pytest.fixture(scope="module")
def small_sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("spark_sample") / "s.duckdb"
    build_sample(path, customers=400, seed=5)
    return path


@pytest.fixture(scope="module")
def spark_wh(tmp_path_factory, small_sample):
    if shutil.which("java") is None:
        skip_or_fail("PySpark needs Java (Debian: apt-get install openjdk-17-jre-headless)")
    try:
        import ibis
        from pyspark.sql import SparkSession
    except ImportError:
        skip_or_fail("pyspark is not installed (pip install -e '.[pyspark]')")
    where = tmp_path_factory.mktemp("spark")
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("sqltraits-kit-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.warehouse.dir", str(where / "warehouse"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={where}")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    wh = Warehouse(con=ibis.pyspark.connect(spark), url="pyspark://local[2]")
    src = connect(f"duckdb://{small_sample}", read_only=True)
    copy_tables(src, wh, tables=["users", "order_completed", "tracks", "pages"])
    src.close()
    yield wh
    spark.stop()


@pytest.fixture(scope="module")
def duck(small_sample):
    wh = connect(f"duckdb://{small_sample}", read_only=True)
    yield wh
    wh.close()


def _frame(expr) -> pd.DataFrame:
    return expr.order_by("profile_id").to_pandas().reset_index(drop=True)


def test_features_match_duckdb(spark_wh, duck):
    spark = _frame(build_features(spark_wh, as_of=AS_OF))
    local = _frame(build_features(duck, as_of=AS_OF))
    assert len(spark) == len(local) > 300
    pd.testing.assert_frame_equal(spark, local, check_dtype=False, atol=DAYS_ATOL, rtol=0)


def test_labels_match_duckdb(spark_wh, duck):
    spark = _frame(build_labels(spark_wh, cutoff=AS_OF, horizon_days=90))
    local = _frame(build_labels(duck, cutoff=AS_OF, horizon_days=90))
    pd.testing.assert_frame_equal(spark, local, check_dtype=False, atol=1e-9, rtol=0)
    assert 0 < spark["churned"].mean() < 1
