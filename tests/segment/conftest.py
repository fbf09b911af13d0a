"""Fixtures: a fresh strict fake Segment server per test, and clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sqltraits_kit.publishing.segment import ProfileClient, SegmentClient
from tests.segment.fake_segment import FakeSegmentServer

WRITE_KEY = "wk_TEST_s3cr3t_0123456789"
PROFILE_TOKEN = "pt_TEST_t0k3n_9876543210"
SPACE_ID = "spa_test"


@pytest.fixture
def segment_server() -> Iterator[FakeSegmentServer]:
    with FakeSegmentServer(
        write_keys=(WRITE_KEY,), profile_tokens=(PROFILE_TOKEN,), space_id=SPACE_ID
    ) as server:
        yield server


@pytest.fixture
def fast_sleeps() -> list[float]:
    """A fake ``sleep`` that records instead of sleeping (backoff tests stay instant)."""
    return []


@pytest.fixture
def segment_client(
    segment_server: FakeSegmentServer, fast_sleeps: list[float]
) -> Iterator[SegmentClient]:
    client = SegmentClient(
        WRITE_KEY,
        endpoint=segment_server.url,
        max_requests_per_second=None,
        max_events_per_second=None,
        timeout=5,
        sleep=fast_sleeps.append,
    )
    yield client
    client.close()


@pytest.fixture
def profile_client(segment_server: FakeSegmentServer) -> Iterator[ProfileClient]:
    client = ProfileClient(PROFILE_TOKEN, space_id=SPACE_ID, endpoint=segment_server.url)
    yield client
    client.close()
