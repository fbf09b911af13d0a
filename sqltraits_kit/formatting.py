"""One number format for the app and the CLI: what a person reads, never a raw repr.

* a measure (a metric, a probability, a PSI) to 4 significant digits: ``0.8852``, ``0.8180``
  beside it would be written ``0.818`` -- so :func:`figure` keeps trailing zeros off and the
  digits count, not the decimals;
* counts with thousands separators (``37,518``);
* shares as percentages (``11.7%``), with the unit in the text (``total % error``: ``1.17%``);
* seconds as ``1.2 s`` / ``3 min 05 s``; instants as human dates in UTC (``2026-11-01 14:03 UTC``);
* a rate limit as ``20/s`` or ``no limit`` (0);
* ``—`` for anything not applicable (``None``, NaN), never ``None`` or ``nan``.

Metric keys (``pr_auc``, ``base_rate``) have one label each (:func:`metric_label`).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

__all__ = [
    "DASH",
    "count",
    "figure",
    "instant",
    "metric_label",
    "metric_value",
    "percent",
    "rate",
    "seconds",
    "value",
]

#: Shown where a value does not apply.
DASH = "—"

_METRIC_LABELS = {
    "auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "brier": "Brier score",
    "top_decile_lift": "top-decile lift",
    "base_rate": "churn rate",
    "mae": "MAE",
    "rmse": "RMSE",
    "spearman": "Spearman",
    "gini": "normalised Gini",
    "total_pct_error": "total error",
    "mean_actual": "mean actual value",
    "mean_predicted": "mean predicted value",
    "training_rows": "training rows",
    "test_rows": "test rows",
}
# Metrics that are shares (shown as percentages) and those already in percent.
_SHARES = {"base_rate"}
_PERCENTS = {"total_pct_error"}


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and not math.isfinite(x))


def figure(x: Any, /, *, digits: int = 4) -> str:
    """A measure to ``digits`` significant digits, with thousands separators: ``0.8852``,
    ``1,235``, ``0.0001234``, ``2.22e-16`` below 0.0001; ``—`` for None or NaN."""
    if _missing(x):
        return DASH
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, str | dt.date):  # a column's min or max need not be a number
        return instant(x)
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    if magnitude < -4:  # 2.2e-16, not seventeen decimals (a parity check's difference)
        mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
        if "." in mantissa:
            mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    decimals = max(digits - 1 - magnitude, 0)
    text = f"{x:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def count(n: Any, /) -> str:
    """A whole number with thousands separators (``37,518``); ``—`` for None."""
    if _missing(n):
        return DASH
    return f"{round(float(n)):,}"


def percent(share: Any, /, *, digits: int = 1) -> str:
    """A share (0.117) as a percentage (``11.7%``); ``—`` for None."""
    if _missing(share):
        return DASH
    return f"{float(share) * 100:,.{digits}f}%"


def seconds(s: Any, /) -> str:
    """A duration: ``0.4 s``, ``12 s``, ``3 min 05 s``, ``1 h 02 min``."""
    if _missing(s):
        return DASH
    s = float(s)
    if s < 10:
        return f"{s:.1f} s"
    if s < 60:
        return f"{s:.0f} s"
    minutes, rest = divmod(round(s), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def instant(when: Any, /) -> str:
    """A date as ``2026-11-01``, an instant as ``2026-11-01 14:03 UTC`` (naive = UTC);
    an ISO string is read first. ``—`` for None."""
    if _missing(when) or when == "":
        return DASH
    if isinstance(when, str):
        try:
            when = dt.datetime.fromisoformat(when.strip().replace("Z", "+00:00"))
        except ValueError:
            return when
        if len(str(when)) and when.time() == dt.time() and when.tzinfo is None:
            return when.date().isoformat()
    if hasattr(when, "to_pydatetime"):  # pandas
        when = when.to_pydatetime()
    if isinstance(when, dt.datetime):
        if when.tzinfo is not None:
            when = when.astimezone(dt.UTC).replace(tzinfo=None)
        return f"{when:%Y-%m-%d %H:%M} UTC"
    if isinstance(when, dt.date):
        return when.isoformat()
    return str(when)


def rate(per_second: Any, /, *, unit: str = "") -> str:
    """A rate limit: ``20/s`` (``20 requests/s`` with a unit); 0 or None is ``no limit``."""
    if _missing(per_second) or not float(per_second):
        return "no limit"
    return f"{figure(per_second)} {unit}/s" if unit else f"{figure(per_second)}/s"


def metric_label(key: str, /) -> str:
    """The label of a metric key (``pr_auc`` -> ``PR AUC``); an unknown key with spaces."""
    return _METRIC_LABELS.get(key, key.replace("_", " "))


def metric_value(key: str, x: Any, /) -> str:
    """A metric's value in its unit: shares and percent metrics with ``%``, rows as counts."""
    if _missing(x):
        return DASH
    if key in _SHARES:
        return percent(x)
    if key in _PERCENTS:
        return f"{figure(x, digits=3)}%"
    if key.endswith("_rows"):
        return count(x)
    return figure(x)


def value(x: Any, /) -> str:
    """Any cell: numbers by :func:`figure` (whole numbers by :func:`count`), instants by
    :func:`instant`, ``—`` for nothing; other values as text."""
    if _missing(x):
        return DASH
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return count(x)
    if isinstance(x, float):
        return figure(x)
    if isinstance(x, dt.date):
        return instant(x)
    return str(x)
