"""A run's limits besides its lease: the time limit checked between batches, and how a run stops."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqltraits_kit.errors import ConfigError

__all__ = ["Deadline", "RunStopped", "guard"]


class RunStopped(Exception):
    """Raised between batches to stop a run cleanly: deadline reached or lease lost."""

    config = False  # read like the engine's own stop reasons: not a configuration error

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Deadline:
    """A run's time limit, checked between batches (``max_duration`` seconds, None = none)."""

    def __init__(self, max_duration: float | None, *, clock: Callable[[], float] = time.monotonic):
        if max_duration is not None and not max_duration > 0:
            raise ConfigError(f"max_duration must be > 0 seconds, got {max_duration}")
        self.max_duration, self.clock = max_duration, clock
        self.started = clock()

    def cap(self, wait: float | bool) -> float | bool:
        """``wait`` shortened to the time this run has left (waiting counts towards it)."""
        if self.max_duration is None or not wait:
            return wait
        left = max(0.0, self.max_duration - (self.clock() - self.started))
        return left if wait is True else min(float(wait), left)

    def check(self) -> None:
        if self.max_duration is None:
            return
        elapsed = self.clock() - self.started
        if elapsed >= self.max_duration:
            raise RunStopped(
                f"stopped at the run's time limit (--max-duration {self.max_duration:g} s, "
                f"{elapsed:.1f} s elapsed); the rows not sent are sent by the next run"
            )


def guard(on_result: Callable[[Any], None], *checks: Callable[[], None]) -> Callable[[Any], None]:
    """``on_result`` followed by ``checks``: a result is recorded before the run may stop."""

    def wrapped(result: Any) -> None:
        on_result(result)
        for check in checks:
            check()

    return wrapped
