"""Helpers for the sync tests: tables to publish, clients for the stand-in, and what it holds."""

from __future__ import annotations

import time
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pyarrow as pa

import sqltraits_kit.publishing.sync.publisher as sync_publisher
from sqltraits_kit.publishing.segment import SegmentClient, to_json_value
from sqltraits_kit.publishing.segment.batching import Batch
from sqltraits_kit.publishing.segment.client import BatchResult, DeliverySummary
from sqltraits_kit.publishing.segment.retry import RetryPolicy
from sqltraits_kit.publishing.standin import FakeSegmentServer
from sqltraits_kit.publishing.sync import state as s
from sqltraits_kit.publishing.sync.destination import client_destination
from sqltraits_kit.warehouse import Warehouse
from tests.support.segment import WRITE_KEY

__all__ = [
    "WRITE_KEY",
    "Watching",
    "assert_server_holds",
    "expected_profiles",
    "ledger_rows",
    "make_client",
    "make_table",
    "publisher_clock",
    "server_profiles",
    "table_key",
    "watching_client",
]


def make_client(server: FakeSegmentServer, sleeps: list[float], **options: Any) -> SegmentClient:
    """A client for the fake server: no rate limit, backoff recorded instead of slept."""
    return SegmentClient(
        WRITE_KEY,
        endpoint=options.pop("endpoint", server.url),
        max_requests_per_second=None,
        max_events_per_second=None,
        timeout=options.pop("timeout", 5),
        sleep=sleeps.append,
        retry=options.pop("retry", RetryPolicy()),
        **options,
    )


def make_table(wh: Warehouse, name: str, data: Mapping[str, Any] | pa.Table) -> None:
    """Create (or replace) ``name`` in the warehouse from columns or an Arrow table."""
    table = data if isinstance(data, pa.Table) else pa.table(dict(data))
    wh.con.create_table(name, table, overwrite=True)


def server_profiles(server: FakeSegmentServer, collection: str = "users") -> dict[str, dict]:
    """``{identifier: traits}`` as the fake server holds them."""
    return {key.split(":", 1)[1]: traits for key, traits in server.collection(collection).items()}


def expected_profiles(
    wh: Warehouse, name: str, *, id_column: str = "user_id", traits: list[str] | None = None
) -> dict[str, dict]:
    """``{identifier: traits}`` as Segment should hold them after publishing ``name``."""
    rows = wh.con.table(name).to_pyarrow().to_pylist()
    out = {}
    for row in rows:
        keep = traits or [c for c in row if c != id_column]
        out[str(row[id_column])] = {c: to_json_value(row[c]) for c in keep}
    return out


def assert_server_holds(
    server: FakeSegmentServer,
    wh: Warehouse,
    name: str,
    *,
    id_column: str = "user_id",
    collection: str = "users",
    removed_are_null: bool = True,
) -> None:
    """Every profile of the table holds exactly its values; every other one holds only nulls."""
    expected = expected_profiles(wh, name, id_column=id_column)
    held = server_profiles(server, collection)
    missing = sorted(set(expected) - set(held))
    assert not missing, f"{len(missing)} profiles never arrived, e.g. {missing[:5]}"
    wrong = {k: (held[k], v) for k, v in expected.items() if held[k] != v}
    assert not wrong, f"{len(wrong)} profiles differ, e.g. {list(wrong.items())[:3]}"
    if removed_are_null:
        extra = {
            k: v
            for k, v in held.items()
            if k not in expected and any(x is not None for x in v.values())
        }
        assert not extra, f"profiles not in the table still hold values: {list(extra.items())[:3]}"
    assert server.rejected == [], server.rejected[:5]


class Watching(SegmentClient):
    """A client that calls ``after(result)`` once the publisher has handled each result."""

    def __init__(self, *args: Any, after: Callable[[BatchResult], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.after = after
        self.results: list[BatchResult] = []

    def send_batches(
        self, batches: Iterable[Batch], *, on_result: Callable[[BatchResult], None] | None = None
    ) -> DeliverySummary:
        def hook(result: BatchResult) -> None:
            try:
                if on_result is not None:
                    on_result(result)
            finally:
                self.results.append(result)
                self.after(result)

        return super().send_batches(batches, on_result=hook)


def watching_client(
    server: FakeSegmentServer, after: Callable[[BatchResult], None], **options: Any
) -> Watching:
    """A :class:`Watching` client for the stand-in: one request at a time, no rate limit, no
    retries unless ``retry`` says, backoff not slept."""
    return Watching(
        WRITE_KEY,
        endpoint=server.url,
        max_requests_per_second=None,
        max_events_per_second=None,
        concurrency=1,
        sleep=lambda _: None,
        retry=options.pop("retry", RetryPolicy(max_retries=0)),
        after=after,
        **options,
    )


def table_key(name: str) -> str:
    """The sync key of table ``name`` published as identify calls (the default)."""
    return f"table:{name}:identify"


def publisher_clock(monkeypatch: Any, start: float = 0.0) -> list[float]:
    """The publisher's clock (commits, progress) held by the test: it reads ``clock[0]``, which
    stands still until the test moves it."""
    clock = [start]
    fake = types.SimpleNamespace(monotonic=lambda: clock[0], perf_counter=time.perf_counter)
    monkeypatch.setattr(sync_publisher, "time", fake)
    return clock


def ledger_rows(wh: Warehouse, name: str, client: SegmentClient) -> list[dict[str, Any]]:
    """Every row of the ledger of table ``name`` published as identify calls through ``client``."""
    table = s.state_table_name(table_key(name), client_destination(client))
    if not wh.has_table(table):
        return []
    return wh.con.table(table).to_pyarrow().to_pylist()
