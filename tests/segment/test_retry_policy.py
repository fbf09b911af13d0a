"""`RetryPolicy` on its own: the edges mutation testing found unpinned by the client tests.

The client tests go through HTTP and only see whether a retry happened; these pin the numbers:
the 5xx range's upper end, the exact backoff ceilings, Retry-After of zero and an HTTP date
without a zone (RFC 5322 "-0000" means UTC even on a machine whose local zone is not UTC).
"""

from __future__ import annotations

import email.utils
import time

import pytest

from sqltraits_kit.publishing.segment.retry import RetryPolicy


class _Top:
    """An rng whose uniform(a, b) is b: the backoff's ceiling itself."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        (399, False),
        (400, False),
        (429, True),
        (499, False),
        (500, True),
        (501, False),
        (599, True),
        (600, False),  # past the 5xx range: nothing a server means as "try again"
        (700, False),
    ],
)
def test_what_is_retried(status: int, retry: bool):
    assert RetryPolicy().is_retryable(status) is retry


def test_backoff_ceiling_doubles_from_the_base_up_to_the_cap():
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0)
    ceilings = [policy.backoff(n, _Top()) for n in range(1, 6)]
    assert ceilings == [0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize(
    ("header", "wait"), [("0", 0.0), ("-5", 0.0), ("2.5", 2.5), ("999", 300.0)]
)
def test_retry_after_in_seconds_is_clamped_to_zero_and_the_cap(header: str, wait: float):
    assert RetryPolicy().retry_after(header, now=0.0) == wait


@pytest.fixture
def not_utc(monkeypatch: pytest.MonkeyPatch):
    """A local zone far from UTC, so a naive datetime read as local time is 5 hours off."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("zone", ["GMT", "-0000", "+0000"])
def test_retry_after_as_an_http_date_is_utc(not_utc, zone: str):
    now = 1_700_000_000.0
    when = email.utils.formatdate(now + 120, usegmt=False).rsplit(" ", 1)[0] + f" {zone}"
    assert RetryPolicy().retry_after(when, now=now) == pytest.approx(120.0)
    assert RetryPolicy().retry_after(when, now=now + 600) == 0.0  # a date in the past: now
