"""The BG/NBD + Gamma-Gamma pair as Ibis expressions: P(alive), P(no purchase in the horizon)
and the spend per purchase are closed forms; the 2F1 factor of the expected purchases, which no
SQL dialect has, is computed in Python for the distinct (frequency, T) pairs and joined back."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from sqltraits_kit.traits.sql_math import NotTranslatable, exp_nonpositive, lit, sigmoid

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["btyd_purchase_factor", "btyd_scores"]


def _btyd_params(params: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    try:
        bg = {k: float(params["bgnbd"][k]) for k in ("r", "alpha", "a", "b")}
        gg = {k: float(params["gamma_gamma"][k]) for k in ("p", "q", "v")}
    except (KeyError, TypeError, ValueError) as exc:
        raise NotTranslatable(f"BTYD parameters are incomplete: {exc!r}") from None
    if params.get("time_unit", "W") != "W":
        raise NotTranslatable(f"BTYD time unit {params.get('time_unit')!r} (only 'W')")
    if not all(v > 0 and math.isfinite(v) for v in (*bg.values(), *gg.values())):
        raise NotTranslatable("BTYD parameters must be finite and positive")
    return bg, gg


def btyd_purchase_factor(
    params: Mapping[str, Any], frequency: Any, T: Any, *, horizon_days: float
) -> np.ndarray:
    """E[purchases in the horizon | alive] for each (frequency, T): the 2F1 part of BG/NBD.

    The same arithmetic as
    :meth:`sqltraits_kit.modelling.btyd.BetaGeo.conditional_expected_purchases`
    without its P(alive) factor, so factor * P(alive) reproduces it.
    """
    from scipy.special import hyp2f1

    bg, _ = _btyd_params(params)
    r, alpha, a, b = bg["r"], bg["alpha"], bg["a"], bg["b"]
    x = np.asarray(frequency, dtype=float)
    T = np.asarray(T, dtype=float)
    t = float(horizon_days) / 7.0
    z = t / (alpha + T + t)
    log1mz = np.log(alpha + T) - np.log(alpha + T + t)
    term = np.exp((a - 1) * log1mz) * hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)
    return (a + b + x - 1) / (a - 1) * (1 - term)


def btyd_scores(
    rfm: ir.Table,
    params: Mapping[str, Any],
    /,
    *,
    horizon_days: float,
    purchase_factor: str | None = "purchase_factor",
) -> dict[str, ir.FloatingValue]:
    """BG/NBD + Gamma-Gamma scores as expressions over ``rfm`` (weeks, like ``BtydPair``).

    ``rfm`` has ``frequency``, ``recency``, ``T`` and ``monetary_value`` (zeros for a customer
    without orders, scored as brand new) and, unless ``purchase_factor`` is None, a column of
    that name holding :func:`btyd_purchase_factor`. Returns ``p_alive``, ``p_no_purchase``,
    ``expected_spend_per_purchase`` and (with the factor) ``expected_purchases`` and
    ``expected_spend`` (purchases x spend per purchase) over the horizon.
    """
    import ibis

    bg, gg = _btyd_params(params)
    r, alpha, a, b = bg["r"], bg["alpha"], bg["a"], bg["b"]
    p, q, v = gg["p"], gg["q"], gg["v"]
    t = float(horizon_days) / 7.0
    x = rfm["frequency"].cast("float64")
    tx = rfm["recency"].cast("float64")
    T = rfm["T"].cast("float64")
    m = rfm["monetary_value"].cast("float64")
    pos = x > 0.0
    log_aT = (T + lit(alpha)).ln()
    # ln(a) - ln(b + x - 1) + (r + x)(ln(alpha + T) - ln(alpha + t_x)), only read where x > 0.
    log_odds_dead = (
        lit(math.log(a))
        - ibis.ifelse(pos, x + lit(b) - 1.0, 1.0).ln()
        + (x + lit(r)) * (log_aT - (tx + lit(alpha)).ln())
    )
    p_alive = ibis.ifelse(pos, sigmoid(-log_odds_dead), 1.0)
    # (r + x) ln((alpha + T) / (alpha + T + t)) <= 0
    some_purchase = 1.0 - exp_nonpositive((x + lit(r)) * (log_aT - (T + lit(alpha) + lit(t)).ln()))
    out: dict[str, ir.FloatingValue] = {
        "p_alive": p_alive,
        "p_no_purchase": 1.0 - p_alive * some_purchase,
    }
    m_used = ibis.ifelse(pos, m, 0.0)
    spend = (x * m_used + lit(v)) * lit(p) / (x * lit(p) + lit(q) - 1.0)
    out["expected_spend_per_purchase"] = spend
    if purchase_factor is not None:
        purchases = rfm[purchase_factor].cast("float64") * p_alive
        out["expected_purchases"] = purchases
        out["expected_spend"] = purchases * spend
    return out
