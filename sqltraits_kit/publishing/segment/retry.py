"""The retry rule for Segment requests, in one screen.

- Retry: connection errors, timeouts, 408, 410, 429, 460 and every 5xx except 501/505
  (the official library's list). Everything else that is not 2xx is permanent.
- Wait: exponential backoff with full jitter, ``uniform(0, min(max_delay, base * 2**n))``,
  so that many clients retrying at once spread out; at most ``max_retries`` retries.
- ``Retry-After`` (seconds or an HTTP date, capped at 300 s) is obeyed and does not spend
  a retry, because the server told us exactly when to come back. The total time one run
  (one `SegmentClient.send_batches` call) spends obeying it is capped by
  ``max_rate_limit_wait``: past it, a batch told to wait again fails at once and is left
  for the next run (a repeated ``Retry-After: 20`` once kept a batch waiting 1,800 s).
- A redirect or an answer that is not Segment's JSON is never retried (`answer.py`).
- Retries are safe because every message carries a deterministic messageId, which
  Segment deduplicates.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
from dataclasses import dataclass

RETRYABLE_4XX = frozenset({408, 410, 429, 460})
PERMANENT_5XX = frozenset({501, 505})


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 10
    base_delay: float = 0.5
    max_delay: float = 60.0
    max_retry_after: float = 300.0
    #: Seconds of ``Retry-After`` one run may obey in total (summed over its batches).
    max_rate_limit_wait: float = 120.0

    def is_retryable(self, status: int) -> bool:
        if 400 <= status < 500:
            return status in RETRYABLE_4XX
        return 500 <= status < 600 and status not in PERMANENT_5XX

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """Delay before retry ``retry_number`` (1-based): full jitter, capped."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry_number - 1))
        return rng.uniform(0, ceiling)

    def retry_after(self, header: str | None, *, now: float) -> float | None:
        """Seconds to wait from a ``Retry-After`` header; ``now`` is wall-clock epoch time."""
        if not header:
            return None
        header = header.strip()
        try:
            seconds = float(header)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(header)
            except (TypeError, ValueError, IndexError):
                return None
            if when.tzinfo is None:  # RFC 5322 "-0000" parses naive; it means UTC
                when = when.replace(tzinfo=dt.UTC)
            seconds = when.timestamp() - now
        if seconds != seconds:  # NaN
            return None
        return min(max(seconds, 0.0), self.max_retry_after)
