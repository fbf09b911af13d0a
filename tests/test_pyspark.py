"""The same feature, label and scoring code on a distributed engine: PySpark in local mode.

Spark runs on the JVM: the suite skips without Java or pyspark on a user's machine and is required
in CI (SQLTRAITS_REQUIRE_ALL=1). The session and its sample are the ``spark_wh`` fixture
(``tests/conftest.py``), shared with the whole journey in ``test_spark_journey.py``.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from sqltraits_kit.modelling.features import build_features, build_labels
from sqltraits_kit.warehouse import connect

pytestmark = [pytest.mark.pyspark, pytest.mark.slow]

AS_OF = dt.datetime(2026, 7, 1)
# Spark keeps timestamps to the second in its epoch arithmetic; DuckDB keeps microseconds.
DAYS_ATOL = 1e-4


@pytest.fixture(scope="module")
def duck(spark_sample):
    wh = connect(f"duckdb://{spark_sample}", read_only=True)
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
