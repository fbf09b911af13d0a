"""200,000 profiles to a local server in another process: zero loss, then 1% changed.

Prints the client throughput (messages acknowledged per second of sending, and overall). No
time is asserted here: the machines that run this differ; the figure is printed for the record.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import requests

from sqltraits_kit.publishing.segment import SegmentClient, to_json_value
from sqltraits_kit.publishing.sync import sync
from tests.support.sync import WRITE_KEY, make_table

ROOT = Path(__file__).resolve().parents[2]
N = 200_000


def _table(changed: np.ndarray | None = None) -> pa.Table:
    i = np.arange(N)
    score = np.round((i * 7919 % N) / N, 4)
    if changed is not None:
        score[changed] = np.round(score[changed] + 0.5, 4)
    return pa.table(
        {
            "user_id": pa.array([f"user-{k}" for k in range(N)]),
            "churn_score": score,
            "ltv_90d": np.round(i * 1.25, 2),
            "plan": pa.array(np.where(i % 3 == 0, "gold", "free")),
        }
    )


def _check_server(url: str, table: pa.Table) -> None:
    held = requests.get(url + "/_fake/profiles/users", timeout=60).json()
    assert len(held) == N
    rows = table.to_pylist()
    wrong = [
        r["user_id"]
        for r in rows
        if held[f"user_id:{r['user_id']}"]
        != {k: to_json_value(v) for k, v in r.items() if k != "user_id"}
    ]
    assert not wrong, f"{len(wrong)} profiles differ, e.g. {wrong[:5]}"


@pytest.mark.slow
def test_200k_profiles_publish_without_loss_then_only_the_changed_1_percent(
    duckdb_wh, server_url, capsys
):
    make_table(duckdb_wh, "scores", _table())
    client = SegmentClient(
        WRITE_KEY,
        endpoint=server_url,
        max_requests_per_second=None,
        max_events_per_second=None,
        concurrency=4,
    )
    start = time.perf_counter()
    first = sync(duckdb_wh, "scores", client=client, batch_size=500)
    total = time.perf_counter() - start
    stats = requests.get(server_url + "/_fake/stats", timeout=10).json()
    assert first.status == "succeeded" and (first.sent, first.failed) == (N, 0)
    assert stats["messages_accepted"] == N
    assert stats["duplicates"] == stats["messages_rejected"] == stats["messages_dropped"] == 0
    _check_server(server_url, _table())

    changed = np.random.default_rng(5).choice(N, size=N // 100, replace=False)
    make_table(duckdb_wh, "scores", _table(changed))
    second = sync(duckdb_wh, "scores", client=client, batch_size=500, allow_drift=True)
    client.close()
    after = requests.get(server_url + "/_fake/stats", timeout=10).json()
    assert (second.changed, second.sent, second.unchanged) == (N // 100, N // 100, N - N // 100)
    assert after["messages_received"] - stats["messages_received"] == N // 100
    _check_server(server_url, _table(changed))
    with capsys.disabled():
        print(
            f"\n[sync throughput] {N:,} profiles: sending {first.send_seconds:.2f} s = "
            f"{first.messages_per_second:,.0f} messages/s; whole run {total:.2f} s = "
            f"{N / total:,.0f} profiles/s ({first.requests} requests). "
            f"1% changed: {second.sent:,} sent in {second.duration_s:.2f} s"
        )
