"""Float64 SQL arithmetic that cannot fail or overflow in any dialect, shared by the model
translations (:mod:`.sql_models`, :mod:`.sql_btyd`): constants enter as literals computed in
Python, ``exp`` only of non-positive numbers, ``ln`` only of positive ones."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = [
    "NotTranslatable",
    "asinh",
    "exp_nonpositive",
    "guarded_ln",
    "lit",
    "sigmoid",
]

# Above this, asinh(x) = ln(2|x|) to double precision and x * x could overflow.
ASINH_LARGE = 1e8
EXP_FLOOR = -700.0


class NotTranslatable(Exception):
    """The model (or one of its steps) has no exact SQL form here; ``str(exc)`` says why."""


def lit(value: float) -> ir.FloatingScalar:
    """An exact float64 constant in every dialect.

    A plain literal such as ``0.009900990099009901`` is a DECIMAL to DuckDB, and its conversion
    to DOUBLE can be one ulp off (52 * that constant then differs from numpy's product). A cast
    from the shortest round-trip string is parsed correctly rounded by DuckDB and PostgreSQL.
    """
    import ibis

    value = float(value)
    if not math.isfinite(value):
        raise NotTranslatable(f"constant {value!r} is not a finite number")
    return ibis.literal(repr(value)).cast("float64")


def asinh(x: ir.FloatingValue) -> ir.FloatingValue:
    """asinh without cancellation for negative x and without overflow for large |x|."""
    import ibis

    ax = x.abs()
    small = (ax + (ax * ax + 1.0).sqrt()).ln()
    large = (ax * 2.0).ln()
    magnitude = ibis.ifelse(ax > ASINH_LARGE, large, small)
    return ibis.ifelse(x < 0.0, -magnitude, magnitude)


def guarded_ln(x: ir.FloatingValue) -> ir.FloatingValue:
    """ln(x) for x > 0, NULL otherwise (numpy gives -inf/NaN there; both fail validation)."""
    import ibis

    return ibis.ifelse(x > 0.0, x.ln(), ibis.null("float64"))


def exp_nonpositive(arg: ir.FloatingValue) -> ir.FloatingValue:
    """exp(arg) for arg <= 0. PostgreSQL raises "underflow" where exp rounds to 0, so the
    argument stops at -700 (exp(-700) ~ 1e-304: 0 to any tolerance); NULL stays NULL."""
    import ibis

    return ibis.ifelse(arg < EXP_FLOOR, EXP_FLOOR, arg).exp()


def sigmoid(z: ir.FloatingValue) -> ir.FloatingValue:
    """1 / (1 + exp(-z)) without overflow (exp of a positive number) or underflow errors."""
    import ibis

    e = exp_nonpositive(-z.abs())
    return ibis.ifelse(z >= 0.0, 1.0 / (e + 1.0), e / (e + 1.0))
