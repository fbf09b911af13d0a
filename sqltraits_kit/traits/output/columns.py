"""The score columns of an output table: what a model of each kind writes for its horizon, what
a column's name says about the model that wrote it, and what became of a name the kit used to
write.

One home for the names: scoring (:func:`sqltraits_kit.traits.scoring.trait_columns`), the Train
page's guided path, and every error about a column a trait set reads that its table lacks.

A churn model over 90 days writes ``churn_probability_90d``, one over 180 days
``churn_probability_180d``, so both fit in one output table. Up to 0.1.0 the names had no horizon
(``churn_probability``, ``predicted_ltv``); :func:`renamed_column` says what each became in the
errors that name them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["LEGACY_COLUMNS", "column_model", "renamed_column", "score_columns"]

#: Per kind: (stem, carries the horizon), in the order the columns are written.
_STEMS: dict[str, tuple[tuple[str, bool], ...]] = {
    "churn": (("churn_probability", True),),
    "ltv": (("predicted_ltv", True),),
    # P(alive) is the state today: no horizon in it
    "btyd": (
        ("p_alive", False),
        ("p_no_purchase", True),
        ("expected_purchases", True),
        ("expected_spend", True),
    ),
}
#: The names written up to 0.1.0, without the horizon, and the kind that wrote each.
LEGACY_COLUMNS = {"churn_probability": "churn", "predicted_ltv": "ltv"}

_DATED = {stem: kind for kind, stems in _STEMS.items() for stem, dated in stems if dated}
_UNDATED = {stem: kind for kind, stems in _STEMS.items() for stem, dated in stems if not dated}
_DATED_COLUMN = re.compile(rf"^({'|'.join(map(re.escape, _DATED))})_(\d+)d$")


def score_columns(kind: str, horizon_days: int, /) -> list[str]:
    """The output columns a model of ``kind`` writes for ``horizon_days`` (in order); [] for a
    kind the kit does not know."""
    h = int(horizon_days)
    return [f"{stem}_{h}d" if dated else stem for stem, dated in _STEMS.get(kind, ())]


def _parts(column: str) -> tuple[str, int] | None:
    match = _DATED_COLUMN.match(column)
    return (match.group(1), int(match.group(2))) if match else None


def column_model(column: str, /) -> tuple[str | None, int | None]:
    """(kind, horizon in days) of the model that writes ``column``: ``churn_probability_180d``
    -> ("churn", 180), ``p_alive`` -> ("btyd", None), a name from before the horizon
    (``churn_probability``) -> ("churn", None), any other column -> (None, None)."""
    parts = _parts(column)
    if parts is not None:
        return _DATED[parts[0]], parts[1]
    kind = _UNDATED.get(column) or LEGACY_COLUMNS.get(column)
    return kind, None


def renamed_column(column: str, columns: Iterable[str], /) -> str:
    """Why ``column`` is not among ``columns`` when the naming of score columns explains it, as
    a sentence for an error message; '' when it does not.

    Three cases: a trait set reads a name from before the horizon (``churn_probability``) while
    the models write ``churn_probability_90d``; a table scored before the rename holds the old
    name; the table (or the chosen models) hold the same score for another horizon.
    """
    columns = list(columns)
    if column in LEGACY_COLUMNS:
        now = [c for c in columns if (_parts(c) or ("",))[0] == column]
        if now:
            return (
                f"the model now writes {now[0]!r} (output columns carry the model's horizon): "
                f'read {now[0]!r} instead ([traits] {now[0]} = "{column}" keeps the trait '
                "name Segment has)"
            )
        return (
            f"output columns now carry the model's horizon: a 90-day model writes "
            f"'{column}_90d', not {column!r}"
        )
    parts = _parts(column)
    if parts is None:
        return ""
    stem, days = parts
    if stem in columns:
        return (
            f"this table was scored before output columns carried the model's horizon (it has "
            f"{stem!r}): score it again to write {column!r}"
        )
    others = [c for c in columns if (_parts(c) or ("",))[0] == stem]
    if others:
        other_days = _parts(others[0])[1]  # type: ignore[index]
        return (
            f"{others[0]!r} is there instead, from a {other_days}-day model: read that column, "
            f"or score with a {days}-day model"
        )
    return ""
