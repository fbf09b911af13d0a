"""A thread-safe token bucket used to stay under Segment's rate ceilings."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """Allow ``rate`` units per second with a one-second burst; ``rate`` 0/None = no limit.

    `acquire` reserves its units at once and then sleeps off any debt outside the lock,
    so concurrent callers queue fairly and a request larger than the bucket (a batch of
    500 events against 300 events/s) still goes through, just later.
    """

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate is not None and rate < 0:
            raise ValueError(f"rate must be >= 0 or None, not {rate}")
        self.rate = rate or None
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(rate or 0)
        self._last = clock()

    def acquire(self, units: float = 1) -> float:
        """Take ``units``; returns the seconds slept."""
        if self.rate is None:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= units
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait
