"""The output production table: staged, validated, swapped in atomically, every run kept.

A run is written to a staging table first and checked there (identifier present, not null, not
empty, unique; every trait non-null and finite; the caller's ``validate`` hook). Only then, in
one transaction, is the staging table's content appended to ``<output>_history`` and the staging
table renamed over the output table. DuckDB and PostgreSQL both have transactional DDL, so
readers see the old table or the new one, never none, and a run that fails at any point leaves
both tables as they were. On an engine without transactional DDL the swap falls back to Ibis'
``create_table(overwrite=True)`` and the result says it was not atomic.

Statements are built with sqlglot expressions (Ibis' own SQL layer) and quoted identifiers; no
SQL is formatted from user input, and table names must be lower snake_case.

API::

    write = write_output(wh, expr, table="churn_traits", id_column="user_id", run_id=run_id)
    runs(wh, "churn_traits")            # one OutputRun per run in the history, newest first
    rollback(wh, "churn_traits", run_id)  # the output table becomes that run's rows again
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import ConfigError, DataError, SqlTraitsError, UnknownTableError
from sqltraits_kit.warehouse.kit_tables import (
    HISTORY_SUFFIX,
    SCRATCH_PREFIX,
    is_history_table,
    is_kit_table,
)
from sqltraits_kit.warehouse.transactions import execute, in_transaction

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "HISTORY_SUFFIX",
    "METADATA_COLUMNS",
    "OutputRun",
    "OutputWrite",
    "check_table_name",
    "history_table",
    "new_run_id",
    "output_tables",
    "rollback",
    "runs",
    "write_output",
]

#: Run metadata every output row carries: what marks an output production table, and never a
#: trait unless a trait set names it (:mod:`sqltraits_kit.traits.traitset` reads it from here).
METADATA_COLUMNS = ("model_name", "model_version", "scored_at", "run_id")
# PostgreSQL truncates identifiers at 63 bytes; the history table adds the suffix.
_MAX_NAME = 63 - len(HISTORY_SUFFIX)
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_STAGING_PREFIX = f"{SCRATCH_PREFIX}staging_"
#: Engines whose DDL is transactional, so drop + rename can be one atomic step.
_TRANSACTIONAL_DDL = frozenset({"duckdb", "postgres"})
_SAMPLE = 5

Validator = Callable[["ir.Table"], Any]


@dataclass(frozen=True)
class OutputWrite:
    """What one write did."""

    table: str
    history_table: str | None
    run_id: str
    rows: int
    columns: tuple[str, ...]
    atomic: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class OutputRun:
    """One run in ``<output>_history``."""

    run_id: str
    scored_at: dt.datetime | None
    model_name: str | None
    model_version: str | None
    rows: int
    current: bool

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["scored_at"] = self.scored_at.isoformat() if self.scored_at else None
        return out


def new_run_id(when: dt.datetime | None = None) -> str:
    """A run id that sorts by time and is unique: ``20261101T120000Z_3f9a1c2b``."""
    when = (when or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return f"{when:%Y%m%dT%H%M%SZ}_{uuid.uuid4().hex[:8]}"


def check_table_name(name: str, *, what: str = "output table") -> str:
    """``name`` if it is a lower snake_case identifier short enough for every engine."""
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > _MAX_NAME:
        raise ConfigError(
            f"{what} name {name!r} must be lower snake_case (letters, digits, '_'; not starting "
            f"with a digit) and at most {_MAX_NAME} characters"
        )
    if name.startswith(_STAGING_PREFIX) or name.endswith(HISTORY_SUFFIX):
        raise ConfigError(f"{what} name {name!r} is reserved for the kit's own tables")
    return name


def history_table(table: str) -> str:
    """The history table of an output table."""
    return f"{table}{HISTORY_SUFFIX}"


# --------------------------------------------------------------------------- SQL plumbing


def output_tables(wh: Warehouse, /, *, outputs_only: bool = True) -> list[str]:
    """The tables a user may pick as a trait source: never the kit's own tables nor history.

    ``outputs_only``: only output production tables (the ones carrying :data:`METADATA_COLUMNS`,
    which scoring replaces whole); otherwise every other table too.
    """
    wanted = set(METADATA_COLUMNS)
    return [
        name
        for name in wh.tables()
        if not is_kit_table(name)
        and not is_history_table(name)
        and (not outputs_only or wanted <= set(wh.table(name).columns))
    ]


def _ident(name: str) -> Any:
    import sqlglot as sg

    return sg.table(name, quoted=True)


def _query(wh: Warehouse, expr: ir.Table) -> Any:
    """An Ibis expression as a sqlglot query for this warehouse's dialect."""
    import sqlglot as sg

    return sg.parse_one(wh.con.compile(expr), read=wh.con.dialect)


_execute = execute
_in_transaction = in_transaction


def _rename(source: str, target: str) -> Any:
    import sqlglot.expressions as sge

    return sge.Alter(
        this=_ident(source), kind="TABLE", actions=[sge.AlterRename(this=_ident(target))]
    )


def _drop(name: str) -> Any:
    import sqlglot.expressions as sge

    return sge.Drop(kind="TABLE", this=_ident(name), exists=True)


def _insert(wh: Warehouse, target: str, expr: ir.Table) -> Any:
    import sqlglot as sg
    import sqlglot.expressions as sge

    return sge.insert(
        _query(wh, expr),
        into=_ident(target),
        columns=[sg.to_identifier(c, quoted=True) for c in expr.columns],
    )


def _create_as(wh: Warehouse, target: str, expr: ir.Table) -> Any:
    import sqlglot.expressions as sge

    return sge.Create(kind="TABLE", this=_ident(target), expression=_query(wh, expr))


def _drop_quietly(wh: Warehouse, name: str) -> None:
    with contextlib.suppress(Exception):
        wh.con.drop_table(name, force=True)


# --------------------------------------------------------------------------- checks


def _check_columns(columns: Sequence[str], id_column: str) -> None:
    bad = [c for c in columns if not _NAME.match(c)]
    if bad:
        raise DataError(f"column name(s) {', '.join(map(repr, bad))} are not lower snake_case")
    if id_column not in columns:
        raise DataError(f"the identifier column {id_column!r} is missing (columns: {columns})")
    missing = [c for c in METADATA_COLUMNS if c not in columns]
    if missing:
        raise DataError(f"run metadata column(s) {', '.join(missing)} are missing")
    if not [c for c in columns if c != id_column and c not in METADATA_COLUMNS]:
        raise DataError("the output has no trait column")


def _check_rows(staged: ir.Table, id_column: str) -> int:
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


def _run_validator(validate: Validator | None, staged: ir.Table) -> None:
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


def _check_kit_history(history: str, hschema: Any, id_column: str) -> None:
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


def _history_plan(wh: Warehouse, staged: ir.Table, history: str, id_column: str) -> list[Any]:
    """Statements that create or extend the history and append this run's rows to it."""
    import ibis

    schema = staged.schema()
    if not wh.has_table(history):
        # The first run creates the history, in the same transaction as the swap.
        return [_create_as(wh, history, staged)]
    hist = wh.con.table(history)
    hschema = hist.schema()
    _check_kit_history(history, hschema, id_column)
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
        tmp = f"{_STAGING_PREFIX}h_{uuid.uuid4().hex[:12]}"
        statements += [_create_as(wh, tmp, rebuilt), _drop(history), _rename(tmp, history)]
        hschema = ibis.schema({**dict(hschema.items()), **{n: schema[n] for n in added}})
    rows = staged.select(
        **{n: staged[n].cast(t) if n in schema.names else ibis.null(t) for n, t in hschema.items()}
    )
    return [*statements, _insert(wh, history, rows)]


# --------------------------------------------------------------------------- API


def write_output(
    wh: Warehouse,
    data: ir.Table,
    /,
    *,
    table: str,
    id_column: str,
    run_id: str,
    validate: Validator | None = None,
    keep_history: bool = True,
    progress: Callable[[str, float], None] | None = None,
) -> OutputWrite:
    """Stage ``data``, check it, then append it to the history and swap it in, atomically.

    ``data`` holds ``id_column``, the trait columns and :data:`METADATA_COLUMNS`. ``validate``
    is called with the staged table; it fails the run by raising, or by returning an object
    whose ``ok`` is False (a :class:`~sqltraits_kit.traits.contract.ContractReport`). Any failure
    drops the staging table and leaves the output and history tables as they were.
    """
    started = time.perf_counter()
    report = progress or (lambda _m, _f: None)
    check_table_name(table)
    columns = list(data.columns)
    _check_columns(columns, id_column)
    if wh.read_only:
        raise ConfigError(f"{wh.display_url} is open read-only: cannot write {table!r}")
    staging = f"{_STAGING_PREFIX}{uuid.uuid4().hex[:16]}"
    history = history_table(table) if keep_history else None
    if history is not None and wh.has_table(history):  # before any work: not someone's table
        _check_kit_history(history, wh.con.table(history).schema(), id_column)
    swapped = False
    try:
        report(f"writing the staging table for {table}", 0.0)
        try:
            wh.con.create_table(staging, data)
            # Read back: the schema as stored (e.g. PostgreSQL's timestamp precision).
            staged = wh.con.table(staging)
        except SqlTraitsError:
            raise
        except Exception as exc:
            raise DataError(
                f"could not write the staging table: {type(exc).__name__}: {exc}"
            ) from None
        report("validating the staged rows", 0.5)
        rows = _check_rows(staged, id_column)
        _run_validator(validate, staged)
        report(f"swapping {rows:,} rows into {table}", 0.8)
        atomic = wh.backend in _TRANSACTIONAL_DDL
        statements: list[Any] = []
        if history is not None:
            statements = _history_plan(wh, staged, history, id_column)
        try:
            if atomic:
                _in_transaction(wh, [*statements, _drop(table), _rename(staging, table)])
            else:
                for statement in statements:
                    _execute(wh, statement)
                wh.con.create_table(table, staged, overwrite=True)
        except Exception as exc:
            raise DataError(
                f"could not swap the new rows into {table!r} ({type(exc).__name__}: {exc}); "
                "the previous table and its history are unchanged"
            ) from None
        swapped = atomic
    finally:
        if not swapped:
            _drop_quietly(wh, staging)
    report("done", 1.0)
    return OutputWrite(
        table=table,
        history_table=history,
        run_id=run_id,
        rows=rows,
        columns=tuple(columns),
        atomic=atomic,
        seconds=time.perf_counter() - started,
    )


def _history(wh: Warehouse, table: str) -> ir.Table:
    check_table_name(table)
    name = history_table(table)
    if not wh.has_table(name):
        raise UnknownTableError(f"{table!r} has no run history ({name!r} does not exist)")
    return wh.con.table(name)


def _current_run(wh: Warehouse, table: str) -> str | None:
    if not wh.has_table(table) or "run_id" not in wh.con.table(table).columns:
        return None
    values = wh.con.table(table).select("run_id").limit(1).to_pyarrow().column(0).to_pylist()
    return values[0] if values else None


def runs(wh: Warehouse, table: str, /) -> list[OutputRun]:
    """Every run kept in ``<table>_history``, newest first; ``current`` marks the live one."""
    hist = _history(wh, table)
    summary = hist.group_by("run_id").aggregate(
        scored_at=hist.scored_at.max(),
        model_name=hist.model_name.max(),
        model_version=hist.model_version.cast("string").max(),
        rows=hist.count(),
    )
    summary = summary.order_by([summary.scored_at.desc(), summary.run_id.desc()])
    current = _current_run(wh, table)
    out = []
    for row in summary.to_pyarrow().to_pylist():
        when = row["scored_at"]
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        out.append(
            OutputRun(
                run_id=row["run_id"],
                scored_at=when,
                model_name=row["model_name"],
                model_version=row["model_version"],
                rows=int(row["rows"]),
                current=row["run_id"] == current,
            )
        )
    return out


def rollback(
    wh: Warehouse,
    table: str,
    run_id: str,
    /,
    *,
    id_column: str | None = None,
    validate: Validator | None = None,
) -> OutputWrite:
    """Make ``table`` hold the rows of an earlier run again (staged, checked and swapped).

    The history is not appended to: the run is already there, and :func:`runs` marks it as the
    current one. Columns a later run added (NULL throughout this run) are left out.
    """
    hist = _history(wh, table)
    rows = hist.filter(hist.run_id == run_id)
    columns = list(hist.columns)
    counts = (
        rows.aggregate(
            _rows=rows.count(), **{f"c{i}": rows[c].count() for i, c in enumerate(columns)}
        )
        .to_pyarrow()
        .to_pylist()[0]
    )
    if not counts["_rows"]:
        known = ", ".join(r.run_id for r in runs(wh, table)[:10]) or "none"
        raise ConfigError(f"no run {run_id!r} in {history_table(table)} (latest runs: {known})")
    kept = [c for i, c in enumerate(columns) if counts[f"c{i}"] or c in METADATA_COLUMNS]
    if id_column is None:
        candidates = [c for c in kept if c in ("user_id", "group_id", "anonymous_id", "email")]
        if not candidates:
            raise ConfigError(f"cannot tell the identifier column of {table!r}: pass id_column")
        id_column = candidates[0]
    return write_output(
        wh,
        rows.select(*kept),
        table=table,
        id_column=id_column,
        run_id=run_id,
        validate=validate,
        keep_history=False,
    )
