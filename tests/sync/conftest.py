"""Fixtures for the sync tests: the strict fake Segment server and helpers to compare with it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sqltraits_kit.publishing.segment import SegmentClient
from tests.support.segment import WRITE_KEY
from tests.support.sync import make_client


@pytest.fixture
def client(segment_server, fast_sleeps) -> Iterator[SegmentClient]:
    c = make_client(segment_server, fast_sleeps)
    yield c
    c.close()


@pytest.fixture
def server_url():
    """The fake Segment server in its own process, so it does not share this one's GIL."""
    args = ["--port", "0", "--write-key", WRITE_KEY, "--no-keep-messages"]
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
