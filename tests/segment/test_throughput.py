"""200,000 identify messages to a local server with zero loss; prints messages/s.

The server runs in its own process, as Segment would, so that it does not compete with
the client for the GIL. No time is asserted: machines differ; the figure is printed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from sqltraits_kit.publishing.segment import SegmentClient, build_encoded_message, pack_batches

N = 200_000
KEY = "throughput-key"


@pytest.fixture
def server_url():
    args = ["--port", "0", "--write-key", KEY, "--no-keep-messages"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.segment.fake_segment", *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        yield proc.stdout.readline().strip().split("=", 1)[1]
    finally:
        proc.terminate()
        proc.stdout.close()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_200k_identify_messages_arrive_without_loss(server_url, capsys):
    messages = (
        build_encoded_message(
            "identify",
            identifier=f"user-{i}",
            traits={"churn_score": i / N, "ltv_90d": i * 1.25, "plan": "gold"},
            run_id="throughput",
            key=i,
        )
        for i in range(N)
    )
    client = SegmentClient(
        KEY,
        endpoint=server_url,
        max_requests_per_second=None,
        max_events_per_second=None,
        concurrency=4,
    )
    start = time.perf_counter()
    summary = client.send_batches(pack_batches(messages, max_messages=500))
    elapsed = time.perf_counter() - start
    client.close()

    stats = requests.get(server_url + "/_fake/stats", timeout=10).json()
    assert summary.ok and summary.delivered_messages == N
    assert stats["messages_accepted"] == N
    assert stats["duplicates"] == stats["messages_rejected"] == stats["messages_dropped"] == 0
    with capsys.disabled():
        print(
            f"\n[segment throughput] {N:,} messages built, batched and delivered in "
            f"{elapsed:.2f} s = {N / elapsed:,.0f} messages/s ({summary.requests} requests)"
        )
