"""Simulated BTYD cohorts (BG/NBD, modified BG/NBD, Gamma-Gamma spend): the sample's process and
the tests' known truth."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["BtydSample", "simulate_bgnbd", "simulate_gamma_gamma"]


class BtydSample(NamedTuple):
    """A simulated BG/NBD cohort; ``frequency_holdout`` counts purchases in (T, T + holdout]."""

    frequency: np.ndarray
    recency: np.ndarray
    T: np.ndarray
    alive: np.ndarray
    frequency_holdout: np.ndarray


def simulate_bgnbd(
    n: int,
    *,
    r: float,
    alpha: float,
    a: float,
    b: float,
    T: Any,
    seed: int | None = None,
    holdout: float = 0.0,
    modified: bool = False,
) -> BtydSample:
    """Simulate n customers of the BG/NBD process observed for T periods after their first buy.

    With N ~ Poisson(lambda T) purchase clock ticks and the customer dropping out after its K-th
    repeat purchase, K ~ Geometric(p), the observed x = min(N, K); the x-th of N uniform event
    times is T * Beta(x, N - x + 1). Memorylessness gives the holdout the same way. With
    ``modified`` (the modified BG/NBD) the first purchase is a dropout chance too: K - 1 for K.
    """
    rng = np.random.default_rng(seed)
    T = np.broadcast_to(np.asarray(T, dtype=float), (n,)).copy()
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = np.clip(rng.beta(a, b, n), 1e-12, 1.0)
    ticks = rng.poisson(lam * T)
    drop_at = rng.geometric(p) - (1 if modified else 0)
    x = np.minimum(ticks, drop_at)
    tx = np.zeros(n)
    pos = x > 0
    tx[pos] = T[pos] * rng.beta(x[pos], ticks[pos] - x[pos] + 1)
    alive = ticks < drop_at
    hold = np.zeros(n, dtype=np.int64)
    if holdout > 0:
        hold_ticks = rng.poisson(lam * holdout)
        hold = np.where(alive, np.minimum(hold_ticks, rng.geometric(p)), 0)
    return BtydSample(x.astype(np.int64), tx, T, alive, hold)


def simulate_gamma_gamma(
    frequency: Any, *, p: float, q: float, v: float, seed: int | None = None
) -> np.ndarray:
    """Mean spend of ``frequency`` transactions per customer under the Gamma-Gamma model."""
    rng = np.random.default_rng(seed)
    x = np.asarray(frequency, dtype=float)
    if np.any(x <= 0):
        raise ValueError(f"simulate_gamma_gamma needs frequency > 0; {int(np.sum(x <= 0))} are not")
    nu = rng.gamma(q, 1.0 / v, x.shape)
    return rng.gamma(p * x, 1.0 / nu) / x
