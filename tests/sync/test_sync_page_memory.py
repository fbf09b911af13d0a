"""A publish holds a few pages of Arrow data at a time, never the table.

test_sync_memory.py measures with ``tracemalloc``, which sees Python objects only: the pages are
Arrow tables whose buffers DuckDB allocates, so a publisher that never freed a page passed it.
Process RSS on a shared machine moved by +-50 MB between identical runs here, more than the
pages themselves, and ``pyarrow.total_allocated_bytes()`` stays at 0 during a send because the
pages come through the Arrow C interface, outside pyarrow's pool. So this counts the Arrow bytes
that are actually still alive: every page read is tracked by a weak reference, and at each
request the bytes of the pages not yet freed are summed (and the pyarrow pool is checked too).
"""

from __future__ import annotations

import weakref

import pyarrow as pa
import requests

import sqltraits_kit.publishing.sync.diff as sync_diff
from sqltraits_kit.publishing.sync import sync
from tests.support.sync import make_client, make_table

N = 30_000
PAGE = 1_000
BATCH = 100
CONCURRENCY = 4


def test_pages_are_freed_as_their_rows_are_settled(
    duckdb_wh, unique_name, segment_server, fast_sleeps, monkeypatch
):
    make_table(
        duckdb_wh,
        unique_name,
        {"user_id": [f"u{i:06d}" for i in range(N)], "pad": [f"{i:06d}" * 40 for i in range(N)]},
    )
    pages: list[tuple[weakref.ref, int]] = []
    read_page = sync_diff.read_page

    def tracked(*args, **kwargs) -> pa.Table:
        page = read_page(*args, **kwargs)
        pages.append((weakref.ref(page), page.nbytes))
        return page

    monkeypatch.setattr(sync_diff, "read_page", tracked)
    pool_before = pa.total_allocated_bytes()
    seen = {"live_pages": 0, "live_bytes": 0, "pool": 0}

    class Measuring(requests.Session):
        def post(self, *args, **kwargs):
            live = [size for ref, size in pages if ref() is not None]
            seen["live_pages"] = max(seen["live_pages"], len(live))
            seen["live_bytes"] = max(seen["live_bytes"], sum(live))
            seen["pool"] = max(seen["pool"], pa.total_allocated_bytes() - pool_before)
            return super().post(*args, **kwargs)

    client = make_client(segment_server, fast_sleeps, concurrency=CONCURRENCY, session=Measuring())
    try:
        # Commit after every settled batch, so a page may be freed as soon as its rows are.
        result = sync(
            duckdb_wh,
            unique_name,
            client=client,
            page_rows=PAGE,
            batch_size=BATCH,
            commit_rows=BATCH,
            commit_seconds=0,
        )
    finally:
        client.close()

    assert result.sent == N
    assert len(pages) == N // PAGE  # 30 pages read, 240 KB each
    page_bytes = max(size for _, size in pages)
    # In flight: at most 2 x concurrency batches of 100 rows (800 rows) plus the page being
    # encoded: a few pages, whatever N is. A publisher keeping every page reaches all 30.
    assert seen["live_pages"] <= 4, seen
    assert seen["live_bytes"] <= 4 * page_bytes, seen
    assert seen["pool"] <= 4 * page_bytes, seen
