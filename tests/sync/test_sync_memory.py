"""A publish holds a few pages in memory, not the table: peak Python memory does not grow with N.

The server runs in another process so its own profile store is not measured.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sqltraits_kit.publishing.segment import SegmentClient
from sqltraits_kit.publishing.sync import sync
from tests.support.sync import WRITE_KEY, make_table

ROOT = Path(__file__).resolve().parents[2]
PAGE = 2_000


def _peak(wh, name: str, n: int, url: str) -> int:
    i = np.arange(n)
    make_table(
        wh,
        name,
        pa.table(
            {
                "user_id": pa.array([f"user-{k:07d}" for k in range(n)]),
                "score": i / n,
                "plan": pa.array(np.where(i % 3 == 0, "gold", "free")),
            }
        ),
    )
    client = SegmentClient(
        WRITE_KEY, endpoint=url, max_requests_per_second=None, max_events_per_second=None
    )
    tracemalloc.start()
    try:
        result = sync(wh, name, client=client, page_rows=PAGE, batch_size=250)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        client.close()
    assert result.sent == n
    return peak


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_table(duckdb_wh, server_url):
    small = _peak(duckdb_wh, "small", 10_000, server_url)
    large = _peak(duckdb_wh, "large", 60_000, server_url)
    # 6x the rows; a publish that held the table would need about 6x the memory
    assert large < 1.5 * small, (small, large)
    # and the absolute figure stays near a few pages' worth of Python objects
    assert large < 30 * 2**20, large
