"""Fixtures: clients pointed at the Segment stand-in (``segment_server``, in the root conftest)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sqltraits_kit.publishing.segment import ProfileClient, SegmentClient
from sqltraits_kit.publishing.standin import FakeSegmentServer
from tests.support.segment import PROFILE_TOKEN, SPACE_ID, WRITE_KEY


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
