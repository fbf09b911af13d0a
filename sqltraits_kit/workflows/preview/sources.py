"""What the Preview reads: the trait set (a file, or a bare table), the tables to pick from, and
the baseline its drift is measured against, with a cheap fingerprint for the app's cache."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from sqltraits_kit.errors import ConfigError, SqlTraitsError
from sqltraits_kit.traits.gate import Baseline
from sqltraits_kit.traits.traitset import (
    ACCOUNT_IDENTIFIER,
    USER_IDENTIFIERS,
    TraitSet,
    resolve,
)

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "baseline",
    "baseline_of",
    "data_version",
    "default_identifier",
    "identifier_kind",
    "load_trait_set_or_table",
    "output_tables",
    "table_sync_key",
]


def table_sync_key(table: str, *, kind: str = "user") -> str:
    """The sync key a publish of the bare table uses (``table:<name>:identify``), so the Preview
    of a table reads that table's published snapshot.

    The format is the sync's own (:func:`sqltraits_kit.publishing.sync.source.table_sync_key`).
    """
    from sqltraits_kit.publishing.sync.source import table_sync_key as sync_key

    return sync_key(table, "group" if kind in ("account", "group") else "identify")


def default_identifier(columns: Sequence[str], /, *, kind: str | None = None) -> str:
    """The identifier column to offer first for a bare table with ``columns``.

    For a ``kind`` (``user``/``identify`` or ``account``/``group``) its Segment name when the
    table has it; without one, the first Segment identifier the table has (``user_id``,
    ``email``, ``anonymous_id``, ``group_id``); else the first column.
    """
    if kind is None:
        wanted: tuple[str, ...] = (*USER_IDENTIFIERS, ACCOUNT_IDENTIFIER)
    elif kind in ("account", "group"):
        wanted = (ACCOUNT_IDENTIFIER,)
    else:
        wanted = ("user_id",)
    return next((c for c in wanted if c in columns), columns[0])


def identifier_kind(id_column: str, /) -> Literal["user", "account"]:
    """``account`` (group calls) for a ``group_id`` identifier, else ``user`` (identify)."""
    return "account" if id_column == ACCOUNT_IDENTIFIER else "user"


def load_trait_set_or_table(
    source: TraitSet | str | os.PathLike[str],
    /,
    *,
    id_column: str | None = None,
    kind: Literal["user", "account"] = "user",
) -> TraitSet:
    """A trait set from a TOML file, or an ad-hoc one over an output table.

    ``source`` is a :class:`TraitSet` (returned as is), a path to a ``.toml`` file, or a table
    name. A table becomes a trait set named by its sync key (:func:`table_sync_key`) whose traits
    are every column but ``id_column`` and the scoring metadata, as a publish of the bare table
    sends them.
    """
    if isinstance(source, TraitSet):
        return source
    if isinstance(source, os.PathLike) or str(source).endswith(".toml"):
        return TraitSet.load(source)
    name = str(source).strip()
    if not name:
        raise ConfigError("give a trait-set file (.toml) or a table name")
    if kind not in ("user", "account"):
        raise ConfigError(f"kind must be 'user' or 'account', got {kind!r}")
    return TraitSet(
        name=table_sync_key(name, kind=kind), table=name, kind=kind, id_column=id_column or None
    )


def output_tables(wh: Warehouse, /) -> list[str]:
    """Tables that can be previewed: everything but history tables and the kit's own tables
    (:func:`sqltraits_kit.traits.output.output_tables` with ``outputs_only=False``)."""
    from sqltraits_kit.traits.output import output_tables as listed

    return listed(wh, outputs_only=False)


def _current_run_id(wh: Warehouse, table: str) -> str | None:
    source = wh.con.table(table)
    if "run_id" not in source.columns:
        return None
    values = source.select("run_id").limit(1).to_pyarrow().column(0).to_pylist()
    return str(values[0]) if values and values[0] is not None else None


def _published(wh: Warehouse, trait_set: TraitSet, sync_key: str) -> tuple[Baseline | None, int]:
    from sqltraits_kit.publishing.sync.checks import published_baseline

    base, published = published_baseline(wh, sync_key)
    if base is None:
        return None, 0
    ident, id_col = trait_set.identifier, trait_set.id_column
    if ident not in base.table.columns and id_col in base.table.columns:
        # a bare table published under its own id column name (the sync keeps it as is)
        base = dataclasses.replace(base, table=base.table.rename({ident: id_col}))
    return base, published


def _previous_run(wh: Warehouse, trait_set: TraitSet) -> tuple[Baseline | None, str]:
    from sqltraits_kit.traits.output import history_table, runs

    table = trait_set.table
    if table is None:
        return None, "a query has no run history"
    history = history_table(table)
    if not wh.has_table(table) or not wh.has_table(history):
        return None, f"{table} has no run history ({history} does not exist)"
    current = _current_run_id(wh, table)
    try:
        kept = runs(wh, table)
    except SqlTraitsError as exc:
        return None, f"the run history of {table} cannot be read: {exc}"
    ids = [r.run_id for r in kept]
    if current not in ids:
        return None, f"the current rows of {table} are not a run of {history}"
    position = ids.index(current)
    if position + 1 >= len(kept):
        return None, f"{table} has only one scoring run so far"
    previous = kept[position + 1]
    hist = wh.con.table(history)
    # resolved by the code that resolves the current table: renames, rounding, tiers and that
    # run's own decile cut points
    rows = hist.filter(hist["run_id"] == previous.run_id)
    resolved = resolve(wh, trait_set, source=rows)
    when = f"scored {previous.scored_at:%Y-%m-%d %H:%M} UTC, " if previous.scored_at else ""
    label = f"previous run {previous.run_id} of {table} ({when}{previous.rows:,} rows)"
    return Baseline(resolved, "previous_run", label), label


def baseline_of(
    wh: Warehouse, trait_set: TraitSet, /, *, sync_key: str | None = None
) -> tuple[Baseline | None, str]:
    """(the :class:`~sqltraits_kit.traits.gate.Baseline` of :func:`baseline`, its label).

    ``sync_key``: the published state to compare with (default: the trait set's name, what a
    publish to the production destination keeps; another destination keeps ``name@dest``).
    """
    key = sync_key or trait_set.name
    published, count = _published(wh, trait_set, key)
    if published is not None and count:
        return published, published.label
    nothing = (
        f"the published snapshot of {key!r} is empty"
        if published is not None
        else f"nothing published under {key!r} yet"
    )
    previous, why = _previous_run(wh, trait_set)
    if previous is not None:
        label = f"{why}; {nothing}"
        return dataclasses.replace(previous, label=label), label
    return None, f"no baseline: {nothing}, and {why}"


def baseline(wh: Warehouse, trait_set: TraitSet, /) -> tuple[ir.Table | None, str]:
    """(the table to measure drift against, a label saying which it is).

    The published snapshot of ``trait_set.name`` (its sync key) when Segment acknowledged any
    profile; else the previous run of the trait set's output table, resolved the same way; else
    ``(None, <why there is none>)``.
    """
    base, label = baseline_of(wh, trait_set)
    return (None if base is None else base.table), label


def data_version(wh: Warehouse, trait_set: TraitSet, /, *, sync_key: str | None = None) -> str:
    """A cheap fingerprint of what a preview depends on: the current run id and row count of the
    source table and the last acknowledged sequence number of the published state.

    The app keys its cache with it, so a new scoring run, a rollback or a publish shows at once.
    """
    from sqltraits_kit.publishing.sync.state import published_version

    parts = []
    if trait_set.table is not None and wh.has_table(trait_set.table):
        source = wh.con.table(trait_set.table)
        parts.append(f"run={_current_run_id(wh, trait_set.table)}")
        parts.append(f"rows={int(source.count().execute())}")
    key = sync_key or trait_set.name
    parts.append(f"published={published_version(wh, key)};key={key}")
    return ";".join(parts)
