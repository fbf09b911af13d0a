"""Staging an output run: the checks on the staged rows, and the statements (built as sqlglot
expressions, quoted identifiers, never formatted from user input) that extend the history and
swap the staged table in."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import ConfigError, DataError
from sqltraits_kit.traits.output.tables import METADATA_COLUMNS, NAME, STAGING_PREFIX

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "STAGING_PREFIX",
    "Validator",
    "check_columns",
    "check_kit_history",
    "check_rows",
    "create_as",
    "drop",
    "drop_quietly",
    "history_plan",
    "insert_rows",
    "rename",
    "run_validator",
]

_SAMPLE = 5

Validator = Callable[["ir.Table"], Any]


def _ident(name: str) -> Any:
    import sqlglot as sg

    return sg.table(name, quoted=True)


def _query(wh: Warehouse, expr: ir.Table) -> Any:
    """An Ibis expression as a sqlglot query for this warehouse's dialect."""
    import sqlglot as sg

    return sg.parse_one(wh.con.compile(expr), read=wh.con.dialect)


def rename(source: str, target: str) -> Any:
    import sqlglot.expressions as sge

    return sge.Alter(
        this=_ident(source), kind="TABLE", actions=[sge.AlterRename(this=_ident(target))]
    )


def drop(name: str) -> Any:
    import sqlglot.expressions as sge

    return sge.Drop(kind="TABLE", this=_ident(name), exists=True)


def insert_rows(wh: Warehouse, target: str, expr: ir.Table) -> Any:
    """``INSERT INTO target (columns) SELECT ...`` of ``expr``."""
    import sqlglot as sg
    import sqlglot.expressions as sge

    return sge.insert(
        _query(wh, expr),
        into=_ident(target),
        columns=[sg.to_identifier(c, quoted=True) for c in expr.columns],
    )


def create_as(wh: Warehouse, target: str, expr: ir.Table) -> Any:
    import sqlglot.expressions as sge

    return sge.Create(kind="TABLE", this=_ident(target), expression=_query(wh, expr))


def drop_quietly(wh: Warehouse, name: str) -> None:
    with contextlib.suppress(Exception):
        wh.con.drop_table(name, force=True)


def check_columns(columns: Sequence[str], id_column: str) -> None:
    bad = [c for c in columns if not NAME.match(c)]
    if bad:
        raise DataError(f"column name(s) {', '.join(map(repr, bad))} are not lower snake_case")
    if id_column not in columns:
        raise DataError(f"the identifier column {id_column!r} is missing (columns: {columns})")
    missing = [c for c in METADATA_COLUMNS if c not in columns]
    if missing:
        raise DataError(f"run metadata column(s) {', '.join(missing)} are missing")
    if not [c for c in columns if c != id_column and c not in METADATA_COLUMNS]:
        raise DataError("the output has no trait column")


def check_rows(staged: ir.Table, id_column: str) -> int:
    """Every row rule in one aggregate; a failure names the column and a few offending ids."""
    schema = staged.schema()
    idc = staged[id_column]
    traits = [c for c in schema.names if c != id_column and c not in METADATA_COLUMNS]
    metrics: dict[str, Any] = {
        "rows": staged.count(),
        "id_nulls": staged.count(where=idc.isnull()),
        "id_distinct": idc.nunique(),
    }
    if schema[id_column].is_string():
        metrics["id_empty"] = staged.count(where=idc.strip() == "")
    bad: dict[str, Any] = {}
    for i, c in enumerate(traits):
        cond = staged[c].isnull()
        if schema[c].is_floating():
            cond = cond | staged[c].isnan() | staged[c].isinf()
        bad[c] = cond
        metrics[f"bad_{i}"] = staged.count(where=cond)
    row = staged.aggregate(**metrics).to_pyarrow().to_pylist()[0]
    counts = {k: int(v or 0) for k, v in row.items()}
    rows = counts["rows"]
    if rows == 0:
        raise DataError("the run scored no profile: nothing to write (the table is unchanged)")
    if counts["id_nulls"]:
        raise DataError(f"{counts['id_nulls']:,} rows have a NULL {id_column}")
    if counts.get("id_empty"):
        raise DataError(f"{counts['id_empty']:,} rows have an empty {id_column}")
    if counts["id_distinct"] != rows:
        dupes = (
            staged.group_by(id_column)
            .aggregate(n=staged.count())
            .filter(lambda t: t.n > 1)
            .order_by(id_column)
            .limit(_SAMPLE)
            .to_pyarrow()
            .to_pylist()
        )
        shown = ", ".join(f"{d[id_column]!r} ({d['n']}x)" for d in dupes)
        raise DataError(
            f"{rows - counts['id_distinct']:,} duplicate {id_column} values (e.g. {shown}): "
            "the output must hold one row per profile"
        )
    for i, c in enumerate(traits):
        n = counts[f"bad_{i}"]
        if n:
            ids = (
                staged.filter(bad[c])
                .select(id_column)
                .order_by(id_column)
                .limit(_SAMPLE)
                .to_pyarrow()
                .column(0)
                .to_pylist()
            )
            raise DataError(
                f"column {c!r}: {n:,} rows are NULL, NaN or infinite (e.g. {id_column} "
                f"{', '.join(map(repr, ids))}); a score must be a finite number"
            )
    return rows


def run_validator(validate: Validator | None, staged: ir.Table) -> None:
    if validate is None:
        return
    outcome = validate(staged)
    if outcome is not None and getattr(outcome, "ok", True) is False:
        summary = getattr(outcome, "summary", None)
        detail = summary() if callable(summary) else str(outcome)
        raise DataError(f"the output failed validation (the table is unchanged): {detail}")


def _compatible(new: Any, old: Any) -> bool:
    """Can a column of type ``new`` be appended to a history column of type ``old``?"""
    if new == old:
        return True
    if new.is_timestamp() and old.is_timestamp():
        return (new.timezone is None) == (old.timezone is None)
    # widened on append: e.g. an integer trait into a float64 history
    return new.is_numeric() and old.is_floating()


def check_kit_history(history: str, hschema: Any, id_column: str) -> None:
    """Refuse to append to (or rebuild) a ``<table>_history`` the kit did not create.

    The kit's history tables carry the identifier and every run metadata column from their
    first run; a table of that name without them is someone else's, and rewriting it (the
    history is rebuilt when a trait column is added) would destroy it.
    """
    missing = [c for c in (id_column, *METADATA_COLUMNS) if c not in hschema.names]
    if missing:
        raise ConfigError(
            f"{history!r} exists but is not a run history written by the kit (it has no "
            f"{', '.join(missing)} column); choose another output table, or rename {history!r}"
        )


def history_plan(wh: Warehouse, staged: ir.Table, history: str, id_column: str) -> list[Any]:
    """Statements that create or extend the history and append this run's rows to it."""
    import ibis

    schema = staged.schema()
    if not wh.has_table(history):
        # The first run creates the history, in the same transaction as the swap.
        return [create_as(wh, history, staged)]
    hist = wh.con.table(history)
    hschema = hist.schema()
    check_kit_history(history, hschema, id_column)
    for name, dtype in schema.items():
        if name in hschema and not _compatible(dtype, hschema[name]):
            raise DataError(
                f"column {name!r} is {dtype} in this run but {hschema[name]} in {history}: "
                "write to a new output table, or drop the history table to start afresh"
            )
    statements: list[Any] = []
    added = [n for n in schema.names if n not in hschema]
    if added:
        # A new trait column: rebuild the history with it (NULL for earlier runs), inside the
        # same transaction as the append and the swap.
        rebuilt = hist.mutate(**{n: ibis.null(schema[n]) for n in added})
        tmp = f"{STAGING_PREFIX}h_{uuid.uuid4().hex[:12]}"
        statements += [create_as(wh, tmp, rebuilt), drop(history), rename(tmp, history)]
        hschema = ibis.schema({**dict(hschema.items()), **{n: schema[n] for n in added}})
    rows = staged.select(
        **{n: staged[n].cast(t) if n in schema.names else ibis.null(t) for n, t in hschema.items()}
    )
    return [*statements, insert_rows(wh, history, rows)]
