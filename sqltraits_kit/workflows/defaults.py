"""What each page offers first on a warehouse: the project's choices, then what the warehouse
holds, never a demo name on a warehouse that is not the demo.

* the trait sets in use: those the project lists for the warehouse; else the trait-set files
  whose table the warehouse holds (every file on the demo sample, which they were written for);
* the models of a warehouse: the cards trained on it (same URL) or whose mapping fits it (the
  same tables and columns: a copy, the same schema elsewhere); any other is listed only when asked;
* the output table to score into: the project's, else the one a trait set in use scores the
  chosen models into, else an output table the warehouse holds, else one named from the model;
* the identifier column scoring writes: the existing output table's, else Segment's ``user_id``;
* the source the Preview and Publish offer first: a trait set in use, else an output table;
  never an input table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqltraits_kit.errors import SqlTraitsError
from sqltraits_kit.modelling.features import TableMapping
from sqltraits_kit.traits.output import METADATA_COLUMNS, output_tables
from sqltraits_kit.traits.traitset import ACCOUNT_IDENTIFIER, USER_IDENTIFIERS, TraitSet
from sqltraits_kit.workflows.catalog import load_trait_sets, model_names

if TYPE_CHECKING:
    from sqltraits_kit.modelling.registry import ModelCard
    from sqltraits_kit.warehouse import Warehouse
    from sqltraits_kit.workflows.project import WarehouseChoices

__all__ = [
    "DEMO_TABLES",
    "SCORE_IDENTIFIERS",
    "default_output_table",
    "default_score_identifier",
    "is_demo_sample",
    "model_fits",
    "models_by_warehouse",
    "trait_sets_in_use",
]

#: The tables the demo sample holds (``sqltraits sample``): the demo trait sets fit them.
DEMO_TABLES = ("users", "order_completed", "tracks", "pages", "sample_truth")
#: The identifier columns scoring may write: Segment's own names, so a trait set sends them as is.
SCORE_IDENTIFIERS = (*USER_IDENTIFIERS, ACCOUNT_IDENTIFIER)


def is_demo_sample(wh: Warehouse, /) -> bool:
    """Whether ``wh`` holds the demo sample (its tables, ``sample_truth`` included)."""
    tables = set(wh.tables())
    return all(name in tables for name in DEMO_TABLES)


def trait_sets_in_use(
    wh: Warehouse,
    folder: str | Path,
    /,
    *,
    listed: Sequence[str] = (),
    project_dir: str | Path | None = None,
    scored_only: bool = False,
) -> list[TraitSet]:
    """The trait sets a page offers on ``wh``, the first being the default.

    ``listed``: the project's ``trait_sets`` for this warehouse (paths relative to
    ``project_dir``); when it names any, those (in its order). Otherwise the files of ``folder``
    that load and whose table ``wh`` holds; on the demo sample, every file.
    """
    every = load_trait_sets(folder, scored_only=scored_only)
    if listed:
        base = Path(project_dir) if project_dir is not None else Path(folder).parent
        wanted = [(base / p).resolve() for p in listed]
        by_path = {ts.path.resolve(): ts for ts in every if ts.path is not None}
        return [by_path[p] for p in wanted if p in by_path]
    if is_demo_sample(wh):
        return every
    tables = set(wh.tables())
    return [ts for ts in every if ts.table is not None and ts.table in tables]


def model_fits(card: ModelCard, wh: Warehouse, /) -> bool:
    """Whether ``card`` was trained on ``wh`` (same URL) or its mapping fits ``wh`` (every
    mapped table and column is there with a usable type)."""
    if card.warehouse and card.warehouse == wh.display_url:
        return True
    try:
        TableMapping.from_dict(card.mapping).validate(wh)
    except (SqlTraitsError, TypeError, ValueError):
        return False
    return True


def models_by_warehouse(
    cards: Iterable[ModelCard], wh: Warehouse, /
) -> tuple[list[ModelCard], list[ModelCard]]:
    """(the cards of this warehouse, the cards of another one), each in the given order."""
    here, elsewhere = [], []
    fits: dict[str, bool] = {}
    for card in cards:
        key = f"{card.warehouse}|{sorted(card.mapping.items())}"
        if key not in fits:
            fits[key] = model_fits(card, wh)
        (here if fits[key] else elsewhere).append(card)
    return here, elsewhere


def default_output_table(
    wh: Warehouse,
    /,
    *,
    choices: WarehouseChoices | None = None,
    trait_sets: Sequence[TraitSet] = (),
    models: Sequence[str] = (),
) -> str:
    """The table to score ``models`` (registry names) into, as the Score page offers it."""
    if choices is not None and choices.output_table:
        return choices.output_table
    for ts in trait_sets:
        names = model_names(ts)
        if models and names and set(models) <= set(names):
            return (ts.model.output_table if ts.model else None) or ts.table or ""
    existing = output_tables(wh)
    if existing:
        return existing[0]
    stem = "_".join(models[:2]) if models else "model"
    return f"{stem}_scores"


def default_score_identifier(wh: Warehouse, table: str, /) -> str:
    """The identifier column to write: the one the existing output table ``table`` has, else
    ``user_id`` (Segment's name for a user; a trait set then sends it as is)."""
    if table and wh.has_table(table):
        columns = [c for c in wh.table(table).columns if c not in METADATA_COLUMNS]
        found = next((c for c in columns if c in SCORE_IDENTIFIERS), None)
        if found is not None:
            return found
    return "user_id"
