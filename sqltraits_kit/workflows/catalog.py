"""The trait-set files a project offers, found one way for every page and command.

The app's Preview, Publish and Score pages list the ``*.toml`` files of the project's
``traitsets/`` folder with the default trait set first; a file that does not load is left for
the Preview to explain (it shows the error), never a reason for another page to fail.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sqltraits_kit.errors import SqlTraitsError
from sqltraits_kit.traits.output import renamed_column
from sqltraits_kit.traits.traitset import TraitSet

__all__ = [
    "DEFAULT_TRAIT_SET",
    "TRAIT_SET_FOLDER",
    "load_trait_sets",
    "missing_columns",
    "model_names",
    "renamed_columns",
    "trait_set_files",
]

#: The trait set the pages open with.
DEFAULT_TRAIT_SET = "churn.toml"
#: Where a project keeps its trait sets, beside ``sqltraits.toml``.
TRAIT_SET_FOLDER = "traitsets"


def trait_set_files(folder: str | Path, /) -> list[Path]:
    """The ``*.toml`` files of ``folder``: :data:`DEFAULT_TRAIT_SET` first, then by name.

    No folder: an empty list.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.toml"), key=lambda p: (p.name != DEFAULT_TRAIT_SET, p.name))


def load_trait_sets(folder: str | Path, /, *, scored_only: bool = False) -> list[TraitSet]:
    """The trait sets of :func:`trait_set_files` that load, in that order.

    ``scored_only``: only those naming the models that score them (a ``[model]`` section).
    """
    out = []
    for path in trait_set_files(folder):
        try:
            ts = TraitSet.load(path)
        except (SqlTraitsError, OSError):
            continue
        if ts.model is not None or not scored_only:
            out.append(ts)
    return out


def model_names(trait_set: TraitSet, /) -> list[str]:
    """The registry names of the models that score ``trait_set`` (its ``[model]``: the main one
    first), without versions; none without a ``[model]`` section."""
    from sqltraits_kit.modelling.registry import parse_ref

    if trait_set.model is None:
        return []
    return [parse_ref(ref)[0] for ref in trait_set.model.refs()]


def missing_columns(trait_set: TraitSet, /, *, written: Iterable[str]) -> list[str]:
    """The source columns ``trait_set`` reads that a scoring run writing ``written`` would not
    provide, sorted; none when the trait set takes every column (no ``[traits]``)."""
    if not trait_set.traits:
        return []
    needed = set(trait_set.traits) | {d.column for d in trait_set.derived}
    return sorted(needed - set(written))


def renamed_columns(missing: Iterable[str], /, *, columns: Iterable[str]) -> list[str]:
    """For each of the ``missing`` columns that a model now writes under another name (one of
    ``columns``), a note saying which (``churn_probability`` became ``churn_probability_90d``),
    for the pages that list what a trait set lacks."""
    columns = list(columns)
    return [f"{c}: {hint}" for c in missing if (hint := renamed_column(c, columns))]
