"""``resolve``: a trait set applied to its source, as one lazy Ibis expression.

Column traits are renamed and rounded, derived traits (tiers, quantiles, flags) computed from the
source columns; the only eager query is the quantile cut points of ``type = "quantiles"`` traits
(so a tier means the same for every row of one publish).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import UnknownTableError
from sqltraits_kit.traits.holdout import holdout_flag
from sqltraits_kit.traits.traitset.queries import query_table
from sqltraits_kit.traits.traitset.rules import OPERATORS, DerivedTrait, TraitSetError

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.traits.traitset.spec import TraitSet
    from sqltraits_kit.warehouse import Warehouse

__all__ = ["resolve", "round_trait", "source_table"]


def source_table(wh: Warehouse, trait_set: TraitSet, /) -> ir.Table:
    """The trait set's source, unmodified: the table, or the checked query."""
    if trait_set.table is not None:
        try:
            return wh.table(trait_set.table)
        except UnknownTableError as exc:
            raise TraitSetError(str(exc), key="table", path=trait_set.path) from None
    return query_table(wh, trait_set.query or "")


def _numeric(dtype: Any) -> bool:
    return dtype.is_numeric() and not dtype.is_boolean()


def _quantile_cuts(table: ir.Table, column: str, bins: int) -> list[float]:
    col = table[column]
    if col.type().is_floating():
        table = table.filter(~col.isnan() & ~col.isinf())
        col = table[column]
    probs = [i / bins for i in range(1, bins)]
    cuts = table.aggregate(q=col.cast("float64").quantile(probs)).execute()["q"].iloc[0]
    if cuts is None:
        return []
    return [float(c) for c in cuts if c is not None and math.isfinite(float(c))]


def _derived_expr(table: ir.Table, d: DerivedTrait, key: str, ts: TraitSet) -> ir.Value:
    import ibis

    if d.column not in table.columns:
        raise ts._error(ts.missing_column(d.column, table.columns), key=f"{key}.column")
    col = table[d.column]
    dtype = col.type()
    if d.type in ("tiers", "quantiles") and not _numeric(dtype):
        raise ts._error(f"column {d.column!r} is {dtype}, tiers need a number", key=f"{key}.column")
    missing = col.isnull()
    if dtype.is_floating():
        missing = missing | col.isnan()
    if d.type == "flag":
        try:
            flag = OPERATORS[d.op](col, d.value)
        except Exception:
            raise ts._error(
                f"cannot compare column {d.column!r} ({dtype}) with {d.value!r}", key=f"{key}.value"
            ) from None
        return ibis.ifelse(missing, ibis.null("boolean"), flag).name(d.name)
    if d.type == "tiers":
        cuts, labels = list(d.thresholds), list(d.labels)
    else:
        cuts = _quantile_cuts(table, d.column, d.bins)
        labels = list(d.labels) if d.labels else list(range(1, d.bins + 1))
    # Highest first: value >= cut_k -> label k+1; duplicate cuts (ties) skip the lower label.
    branches = [(missing, ibis.null("string" if isinstance(labels[0], str) else "int64"))]
    branches += [(col >= cut, labels[i + 1]) for i, cut in reversed(list(enumerate(cuts)))]
    return ibis.cases(*branches, else_=labels[0]).name(d.name)


def round_trait(value: ir.NumericValue, decimals: int, /) -> ir.NumericValue:
    """``value`` rounded to ``decimals`` places, cheaply on every backend.

    Ibis compiles ``round(x, d)`` on PostgreSQL as a round trip through NUMERIC, which made the
    resolved table ~10x slower to aggregate. Floats are rounded as ``round(x * 10^d) / 10^d``
    instead (ties may go to the even neighbour on PostgreSQL); values too large for that to
    be exact, NaN, ±inf and nulls pass through unchanged, so the contract checks still see them.
    Decimals keep the exact ``round``.
    """
    import ibis

    if not value.type().is_floating():
        return value.round(decimals)
    scale = 10**decimals
    exact = value.abs() * scale < 1e15  # false for NaN and ±inf as well (NaN sorts last)
    return ibis.ifelse(exact, (value * scale).round() / scale, value)


def resolve(wh: Warehouse, trait_set: TraitSet, /, *, source: ir.Table | None = None) -> ir.Table:
    """The table to publish: the identifier (named ``trait_set.identifier``) + traits.

    Column traits are renamed to their trait names and rounded per ``[decimals]``; derived traits
    are computed in Ibis from the source columns. Nothing is materialised: the result is a lazy
    expression the contract checks, the Preview page and the sync engine all run in the warehouse.
    ``source``: rows to resolve instead of the trait set's own table or query (one run of the
    history table, resolved exactly like the current one).
    """
    table = source_table(wh, trait_set) if source is None else source
    id_col = trait_set.id_column
    if id_col not in table.columns:
        raise trait_set._error(
            f"identifier column {id_col!r} is not in the {trait_set.source_label} "
            f"(columns: {', '.join(table.columns)})",
            key="id_column",
        )
    mapping = trait_set.trait_map(table.columns)
    schema = table.schema()
    for key in ("decimals", "tolerance", "relative_tolerance"):
        for trait in getattr(trait_set, key):
            column = next((c for c, t in mapping.items() if t == trait), None)
            if column is None:
                raise trait_set._error(
                    f"no trait {trait!r} (traits: {', '.join(mapping.values())})",
                    key=f"{key}.{trait}",
                )
            if not _numeric(schema[column]):
                raise trait_set._error(
                    f"trait {trait!r} (column {column!r}) is {schema[column]}, not a number",
                    key=f"{key}.{trait}",
                )
    names = set(mapping.values())
    for i, d in enumerate(trait_set.derived):
        if d.name in names:
            raise trait_set._error(
                f"trait name {d.name!r} is also a column trait", key=f"derived[{i}].name"
            )
    if trait_set.identifier in names:
        raise trait_set._error(
            f"trait name {trait_set.identifier!r} is the identifier's name", key="traits"
        )
    # Round first, then derive: a tier or flag must agree with the value Segment receives
    # (0.6996 is published as 0.7, so it must also be "high", not "medium").
    rounded = {}
    for column, trait in mapping.items():
        decimals = trait_set.decimals.get(trait)
        if decimals is not None and not schema[column].is_integer():
            rounded[column] = round_trait(table[column], decimals)
    if rounded:
        # keep only what the traits read, so no other source column leaks into the query
        needed = {id_col, *mapping, *(d.column for d in trait_set.derived)}
        table = table.select(**{c: rounded.get(c, table[c]) for c in table.columns if c in needed})
    exprs: dict[str, ir.Value] = {trait_set.identifier: table[id_col]}
    for column, trait in mapping.items():
        exprs[trait] = table[column]
    for i, d in enumerate(trait_set.derived):
        exprs[d.name] = _derived_expr(table, d, f"derived[{i}]", trait_set)
    holdout = trait_set.holdout
    if holdout is not None:
        if holdout.trait_name(trait_set.name) in names:
            raise trait_set._error(
                f"trait name {holdout.trait_name(trait_set.name)!r} is also a column trait",
                key="holdout.name",
            )
        flag = holdout_flag(table[id_col], share=holdout.share, salt=holdout.salt)
        exprs[holdout.trait_name(trait_set.name)] = flag
    return table.select(**exprs)
