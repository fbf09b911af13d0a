"""Helpers the tests share: paths, data builders, clients for the Segment stand-in, reference
models and the warehouses' test settings.

Fixtures live in the ``conftest.py`` files, where pytest finds them (the root one holds the
warehouses, the Segment stand-in and the session's fitted models); plain helpers are imported
from this package, never from a test module or a conftest.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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
