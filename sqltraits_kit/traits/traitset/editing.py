"""Writing a trait set from the app: a first draft from an output table, the edits, the diff
against the file before saving, and the file name.

The draft is what a newcomer would otherwise write by hand: every trait column under its own
snake_case name, probabilities rounded to 3 decimals and values to 2, with a tolerance below
which a change is not re-sent (a re-score would otherwise re-send nearly every profile), and a
``[model]`` section naming the models that wrote the table, so ``sqltraits run`` re-scores it.
Saving goes through :meth:`TraitSet.dump`, which keeps an existing file's comments and layout.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqltraits_kit.traits.output import METADATA_COLUMNS
from sqltraits_kit.traits.traitset.rules import (
    FLAG_OPS,
    DerivedTrait,
    ModelRef,
    TraitSetError,
    snake_case,
)
from sqltraits_kit.traits.traitset.spec import ACCOUNT_IDENTIFIER, USER_IDENTIFIERS, TraitSet

if TYPE_CHECKING:
    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "TraitRow",
    "build",
    "derived_rule",
    "draft",
    "file_name",
    "parse_derived",
    "rounding_for",
    "rows_of",
    "text_diff",
    "trait_columns_of",
]

_PROBABILITY = re.compile(r"(probability|^p_|_p$|_rate$|share|score)")
_MONEY = re.compile(r"(ltv|spend|revenue|value|amount|dollars)")


def rounding_for(column: str, /) -> tuple[int, float]:
    """(decimals, tolerance) a trait starts with: probabilities 3 decimals and a change of
    0.02 to be re-sent, money 2 decimals and 1.0, other numbers 2 decimals and 0.1."""
    low = column.lower()
    if _PROBABILITY.search(low):
        return 3, 0.02
    if _MONEY.search(low):
        return 2, 1.0
    return 2, 0.1


def trait_columns_of(wh: Warehouse, table: str, /, *, id_column: str) -> list[str]:
    """The columns of ``table`` that can become traits: all but the identifier and the
    scoring metadata."""
    return [c for c in wh.table(table).columns if c != id_column and c not in METADATA_COLUMNS]


def _models_of(wh: Warehouse, table: str) -> list[str]:
    source = wh.table(table)
    if "model_name" not in source.columns:
        return []
    values = source.select("model_name").limit(1).to_pyarrow().column(0).to_pylist()
    if not values or not values[0]:
        return []
    return [name for name in str(values[0]).split(",") if name]


def draft(
    wh: Warehouse,
    table: str,
    /,
    *,
    name: str | None = None,
    id_column: str | None = None,
    kind: Literal["user", "account"] | None = None,
) -> TraitSet:
    """A first trait set over the output table ``table``: every trait column, rounded and with
    a tolerance (:func:`rounding_for`), and the models that wrote the table as ``[model]``."""
    schema = wh.table(table).schema()
    columns = list(schema.names)
    if id_column is None:
        wanted = (*USER_IDENTIFIERS, ACCOUNT_IDENTIFIER)
        id_column = next((c for c in wanted if c in columns), columns[0])
    if kind is None:
        kind = "account" if id_column == ACCOUNT_IDENTIFIER else "user"
    traits, decimals, tolerance = {}, {}, {}
    for column in trait_columns_of(wh, table, id_column=id_column):
        trait = snake_case(column)
        traits[column] = trait
        if schema[column].is_floating() or schema[column].is_decimal():
            decimals[trait], tolerance[trait] = rounding_for(column)
    models = _models_of(wh, table)
    model = (
        ModelRef(name=models[0], version="active", output_table=table, also=tuple(models[1:]))
        if models
        else None
    )
    return TraitSet(
        name=name or snake_case(table),
        table=table,
        kind=kind,
        id_column=id_column,
        traits=traits,
        decimals=decimals,
        tolerance=tolerance,
        model=model,
    )


def file_name(trait_set: TraitSet | str, /) -> str:
    """The file a trait set is saved as in the project's ``traitsets/``: ``<name>.toml``."""
    name = trait_set if isinstance(trait_set, str) else trait_set.name
    return f"{snake_case(name) or 'traits'}.toml"


def text_diff(old: str, new: str, /, *, path: str | Path = "trait set") -> str:
    """A unified diff of a trait-set file before and after a save ('' when nothing changes)."""
    lines: Sequence[str] = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"{path} (saved)" if old else "/dev/null",
        tofile=f"{path} (after saving)",
    )
    return "".join(lines)


# --------------------------------------------------------------------------- the editor's rows


@dataclass(frozen=True)
class TraitRow:
    """One source column as the editor shows it: published or not, under which trait name,
    rounded to how many decimals (None: as is), re-sent above which change (0: any) and above
    which share of the published value (``relative``: 0.05 = 5%; 0: no relative bound)."""

    column: str
    publish: bool
    trait: str
    decimals: int | None = None
    tolerance: float = 0.0
    relative: float = 0.0


def rows_of(trait_set: TraitSet, columns: Iterable[str], /) -> list[TraitRow]:
    """The editor's rows for ``trait_set`` over a source with ``columns``: every candidate
    column, published or not; a column the trait set names but the source lacks comes last
    (still published: the Preview says it is missing, the editor can drop it)."""
    columns = list(columns)
    if trait_set.traits:
        mapped = dict(trait_set.traits)
        columns += [c for c in mapped if c not in columns]
    else:
        mapped = trait_set.trait_map(columns)
    out = []
    for column in columns:
        if column == trait_set.id_column or column in METADATA_COLUMNS:
            continue
        trait = mapped.get(column, snake_case(column))
        out.append(
            TraitRow(
                column=column,
                publish=column in mapped,
                trait=trait,
                decimals=trait_set.decimals.get(trait),
                tolerance=float(trait_set.tolerance.get(trait, 0.0)),
                relative=float(trait_set.relative_tolerance.get(trait, 0.0)),
            )
        )
    return out


def build(
    base: TraitSet,
    /,
    *,
    rows: Sequence[TraitRow],
    derived: Sequence[DerivedTrait] = (),
    **changes: Any,
) -> TraitSet:
    """``base`` with the editor's rows and derived traits (and any other field in
    ``changes``: name, kind, id_column, on_remove, drift_threshold, description).

    Raises :class:`TraitSetError` naming what is wrong (a duplicate trait name, ...).
    """
    published = [r for r in rows if r.publish]
    if not published and not derived:
        raise TraitSetError("choose at least one column to publish", key="traits")
    traits = {r.column: r.trait.strip() for r in published}
    decimals = {r.trait.strip(): int(r.decimals) for r in published if r.decimals is not None}
    tolerance = {r.trait.strip(): float(r.tolerance) for r in published if r.tolerance}
    relative = {r.trait.strip(): float(r.relative) for r in published if r.relative}
    return base.with_(
        traits=traits,
        exclude=(),
        decimals=decimals,
        tolerance=tolerance,
        relative_tolerance=relative,
        derived=tuple(derived),
        **changes,
    )


_NUMBER = r"-?\d+(?:\.\d+)?"


def parse_derived(name: str, kind: str, column: str, rule: str, /) -> DerivedTrait:
    """A derived trait from the editor's one-line rule:

    * ``tiers``: thresholds, then labels: ``0.3, 0.7 -> low, medium, high``;
    * ``quantiles``: the number of bins, optionally labels: ``10`` or ``4 -> q1, q2, q3, q4``;
    * ``flag``: an operator and a value: ``>= 0.7``.
    """
    name, rule = name.strip(), rule.strip()
    key = f"derived {name or '(unnamed)'}"
    if not name:
        raise TraitSetError("a derived trait needs a name", key=key)
    if kind == "flag":
        match = re.fullmatch(r"(>=|<=|==|!=|>|<)\s*(" + _NUMBER + ")", rule)
        if not match:
            raise TraitSetError(
                f"write the flag's rule as an operator ({' '.join(FLAG_OPS)}) and a number, "
                "such as '>= 0.7'",
                key=key,
            )
        value = float(match.group(2))
        return DerivedTrait(
            name=name,
            type="flag",
            column=column,
            op=match.group(1),
            value=int(value) if value.is_integer() and "." not in match.group(2) else value,
        )
    left, _, right = rule.partition("->")
    labels = tuple(x.strip() for x in right.split(",") if x.strip())
    if kind == "quantiles":
        if not re.fullmatch(r"\d+", left.strip()):
            raise TraitSetError("write the number of bins, such as '10'", key=key)
        return DerivedTrait(
            name=name, type="quantiles", column=column, bins=int(left.strip()), labels=labels
        )
    if kind != "tiers":
        raise TraitSetError(f"a derived trait is tiers, quantiles or flag, not {kind!r}", key=key)
    try:
        thresholds = tuple(float(x) for x in left.split(",") if x.strip())
    except ValueError:
        raise TraitSetError(
            "write the tiers as thresholds then labels, such as '0.3, 0.7 -> low, medium, high'",
            key=key,
        ) from None
    return DerivedTrait(
        name=name, type="tiers", column=column, thresholds=thresholds, labels=labels
    )


def derived_rule(derived: DerivedTrait, /) -> str:
    """The editor's one-line rule of a derived trait (what :func:`parse_derived` reads)."""

    def number(x: Any) -> str:
        return f"{x:g}" if isinstance(x, float) else str(x)

    labels = f" -> {', '.join(derived.labels)}" if derived.labels else ""
    if derived.type == "flag":
        return f"{derived.op} {number(derived.value)}"
    if derived.type == "quantiles":
        return f"{derived.bins}{labels}"
    return ", ".join(number(t) for t in derived.thresholds) + labels
