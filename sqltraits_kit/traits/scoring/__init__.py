"""Score every profile with registry models, as of a date, into the output production table.

For each model the kit picks one of two paths and records which and why:

* **in the warehouse** — the fitted pipeline is translated into Ibis expressions
  (:mod:`sqltraits_kit.traits.sql_models`) and the scores are computed where the features are. A
  translation is trusted only after a parity check at scoring time: a systematic sample of rows
  (``parity_rows``, 2,000 by default) is scored both ways and the largest absolute difference
  must be at most ``tolerance`` (1e-9). BG/NBD + Gamma-Gamma models go this way too: P(alive),
  P(no purchase) and spend per purchase are closed forms; the 2F1 factor of the expected
  purchases is computed in Python for the distinct (frequency, T) pairs only (about 20,000 for
  a million customers) and joined back as a lookup table.
* **streamed** — everything else (tree ensembles, unsupported steps, a failed parity check):
  on an engine that maps Python over Arrow batches on its workers (Spark's ``mapInArrow``) the
  fitted model scores each batch there and the scores are written to a table by the workers, so
  no row leaves the warehouse; elsewhere the features leave the warehouse in Arrow batches of
  ``batch_rows``, read one batch ahead by a background thread while the fitted model scores
  earlier batches, one per core in worker threads (each with one OpenMP thread), the scores go
  to a Parquet staging file in reading order, and only once the read is finished are they
  loaded back. Writing while the read is still open would hit ibis #9444 (on DuckDB the
  iteration silently stops after the first batch), so the two never overlap. Memory stays at a
  few batches (about two per core) whatever the number of profiles.

Features are built in the warehouse exactly as in training
(:func:`~sqltraits_kit.modelling.features.build_features` with the model card's mapping and
windows) and materialised once per run in a temporary table (a scratch table on Spark, which has
none), which the parity sample, the in-warehouse scores and the stream all read.

The results of every model are joined on the profile id into one row per profile, with the
run's metadata, and handed to :func:`sqltraits_kit.traits.output.write_output` (staging, checks,
atomic swap, history).

The package: :func:`score` plans the run here (options, models, as-of date, features) and hands
each model to its path, :mod:`.sklearn_path` or :mod:`.btyd_path`; :mod:`.models` loads and
checks the models, :mod:`.scratch` holds the scratch tables and the streamed path.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqltraits_kit.errors import ConfigError, DataError
from sqltraits_kit.modelling.features import build_features, data_end
from sqltraits_kit.traits.output import (
    METADATA_COLUMNS,
    check_output_target,
    check_table_name,
    new_run_id,
    record_score_run,
    write_output,
)
from sqltraits_kit.traits.scoring.btyd_path import score_btyd
from sqltraits_kit.traits.scoring.models import (
    ModelRun,
    ScoredModel,
    ScoreResult,
    as_of_day,
    check_distinct_columns,
    day,
    default_as_of,
    predict_scores,
    resolve_models,
    trait_columns,
)
from sqltraits_kit.traits.scoring.scratch import Progress, Scratch, sub_progress
from sqltraits_kit.traits.scoring.sklearn_path import plan_sklearn, stream_sklearn
from sqltraits_kit.warehouse.capabilities import capabilities

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.modelling.registry import LoadedModel, Registry
    from sqltraits_kit.traits.output import Validator
    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "DEFAULT_OUTPUT_TABLE",
    "METHODS",
    "PARITY_TOLERANCE",
    "ModelRun",
    "ScoreResult",
    "check_distinct_columns",
    "default_as_of",
    "predict_scores",
    "score",
    "trait_columns",
]

DEFAULT_OUTPUT_TABLE = "churn_traits"
METHODS = ("auto", "warehouse", "streamed")
PARITY_TOLERANCE = 1e-9
PARITY_ROWS = 2_000
BATCH_ROWS = 100_000


@dataclass(frozen=True)
class _Options:
    method: str
    parity_rows: int
    tolerance: float
    batch_rows: int


@dataclass
class _Plan:
    """What one run scores: the models, as of when, under which run id."""

    models: list[ScoredModel]
    when: dt.datetime
    scored_at: dt.datetime
    run_id: str
    notes: list[str]


def _check_options(wh: Warehouse, table: str, id_column: str, options: _Options) -> None:
    if options.method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {options.method!r}")
    check_table_name(table)
    check_table_name(id_column, what="identifier column")
    if not 1 <= int(options.parity_rows) <= 1_000_000:
        raise ConfigError(f"parity_rows must be between 1 and 1,000,000, got {options.parity_rows}")
    if not options.tolerance >= 0 or not math.isfinite(options.tolerance):
        raise ConfigError(f"tolerance must be a finite number >= 0, got {options.tolerance}")
    if int(options.batch_rows) < 1:
        raise ConfigError(f"batch_rows must be at least 1, got {options.batch_rows}")
    if wh.read_only:
        raise ConfigError(f"{wh.display_url} is open read-only: scoring writes {table!r}")
    check_output_target(wh, table)


def _plan(
    wh: Warehouse,
    models: str | LoadedModel | Sequence[str | LoadedModel],
    registry: Registry | str | Path | None,
    as_of: dt.date | dt.datetime | str | None,
    id_column: str,
    run_id: str | None,
) -> _Plan:
    resolved = resolve_models(models, registry)
    taken = {id_column, *METADATA_COLUMNS}
    clash = [c for m in resolved for c in m.columns if c in taken]
    if clash:
        raise ConfigError(f"column {clash[0]!r} is both a trait and the identifier/run metadata")
    mappings = {json.dumps(m.mapping.to_dict(), sort_keys=True): m.mapping for m in resolved}
    for mapping in mappings.values():
        mapping.validate(wh)
    if as_of is None:
        when = max(day(data_end(wh, mp)) for mp in mappings.values()) + dt.timedelta(days=1)
    else:
        when = as_of_day(as_of)
    scored_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    notes = []
    for m in resolved:
        if m.card.cutoff and when.date().isoformat() < m.card.cutoff:
            notes.append(f"{m.card.ref} was trained at cutoff {m.card.cutoff}, after as_of")
        # a BTYD pair reads the RFM summary, not the feature table: its card's list is moot
        if m.card.kind != "btyd" and m.features != list(m.card.features):
            notes.append(f"{m.card.ref}: its card lists the features in another order than the "
                         "model was fitted with; scored in the model's order")  # fmt: skip
    return _Plan(resolved, when, scored_at, run_id or new_run_id(scored_at), notes)


def _features(
    wh: Warehouse, scratch: Scratch, plan: _Plan, report: Progress
) -> tuple[dict[str, ir.Table], ir.Table, int]:
    """Features once per (mapping, windows), materialised for every reader; the profile ids."""
    tables: dict[str, ir.Table] = {}
    sklearn = [m for m in plan.models if m.card.kind != "btyd"]
    for i, m in enumerate(sklearn):
        if m.feature_key not in tables:
            report(f"building features as of {plan.when.date()} in the warehouse", 0.02 + 0.01 * i)
            expr = build_features(
                wh, m.mapping, as_of=plan.when, windows=m.windows, spec=m.card.feature_spec
            )
            tables[m.feature_key] = scratch.table(expr)
    if tables:
        ids = next(iter(tables.values())).select("profile_id")
    else:
        from sqltraits_kit.modelling.features import profiles_as_of

        profiles = profiles_as_of(wh, plan.models[0].mapping, plan.when)
        ids = scratch.table(profiles.select("profile_id"))
    total = int(ids.count().execute())
    if total == 0:
        raise DataError(
            f"no profile in {plan.models[0].mapping.profiles_table!r} existed before "
            f"{plan.when.date()}: nothing to score"
        )
    return tables, ids, total


def _score_models(
    wh: Warehouse,
    scratch: Scratch,
    plan: _Plan,
    features: dict[str, ir.Table],
    ids: ir.Table,
    total: int,
    options: _Options,
    report: Progress,
    timings: dict[str, float],
) -> tuple[list[ModelRun], list[ir.Table]]:
    """Each model in the warehouse if proven equal, else streamed (grouped per feature table)."""
    runs: list[ModelRun] = []
    results: list[ir.Table] = []
    streamed: dict[str, list[ScoredModel]] = {}
    checks = {"total": total, "parity_rows": options.parity_rows, "tolerance": options.tolerance}
    span = 0.55 / len(plan.models)
    for i, m in enumerate(plan.models):
        step = sub_progress(report, 0.2 + span * i, 0.2 + span * (i + 1))
        started = time.perf_counter()
        if m.card.kind == "btyd":
            run, result = score_btyd(
                wh,
                scratch,
                m,
                ids,
                plan.when,
                method=options.method,
                batch_rows=options.batch_rows,
                report=step,
                **checks,
            )
            results.append(result)
        else:
            table = features[m.feature_key]
            run, expr = plan_sklearn(m, table, method=options.method, report=step, **checks)
            if expr is None:
                streamed.setdefault(m.feature_key, []).append(m)
            else:
                results.append(table.select("profile_id", **{m.columns[0]: expr}))
        runs.append(dataclasses.replace(run, seconds=time.perf_counter() - started))
    timings["models"] = sum(r.seconds for r in runs)
    if streamed:
        started = time.perf_counter()
        for j, (key, group) in enumerate(streamed.items()):
            n = len(streamed)
            step = sub_progress(report, 0.75 + 0.1 * j / n, 0.75 + 0.1 * (j + 1) / n)
            results.append(
                stream_sklearn(
                    wh,
                    scratch,
                    features[key],
                    group,
                    total=total,
                    batch_rows=options.batch_rows,
                    report=step,
                )
            )
        timings["streaming"] = time.perf_counter() - started
    if capabilities(wh).spark_dataframes:  # the stream ran in the engine's workers, not here
        where = "; by the engine's workers (Arrow batches), no row left the warehouse"
        runs = [
            dataclasses.replace(r, reason=r.reason + where) if r.path == "streamed" else r
            for r in runs
        ]
    return runs, results


def _output(ids: ir.Table, results: list[ir.Table], plan: _Plan, id_column: str) -> ir.Table:
    """One row per profile: the identifier, the traits in model order, the run's metadata."""
    import ibis

    joined = ids
    for k, res in enumerate(results):
        renamed = res.view().rename(**{f"_sqltraits_pid_{k}": "profile_id"})
        joined = joined.left_join(renamed, joined.profile_id == renamed[f"_sqltraits_pid_{k}"])
    columns = [c for m in plan.models for c in m.columns]
    cards = [m.card for m in plan.models]
    return joined.select(
        **{id_column: joined.profile_id},
        **{c: joined[c].cast("float64") for c in columns},
        model_name=ibis.literal(",".join(c.name for c in cards)),
        model_version=ibis.literal(",".join(str(c.version) for c in cards)),
        scored_at=ibis.literal(plan.scored_at, type="timestamp('UTC')"),
        run_id=ibis.literal(plan.run_id),
    )


def _model_record(m: ScoredModel) -> dict[str, object]:
    card = m.card
    return {
        "ref": card.ref,
        "name": card.name,
        "version": card.version,
        "kind": card.kind,
        "columns": list(m.columns),
        "horizon_days": int(card.horizon_days),
    }


def score(
    wh: Warehouse,
    *,
    models: str | LoadedModel | Sequence[str | LoadedModel],
    table: str = DEFAULT_OUTPUT_TABLE,
    registry: Registry | str | Path | None = None,
    as_of: dt.date | dt.datetime | str | None = None,
    id_column: str = "user_id",
    method: str = "auto",
    parity_rows: int = PARITY_ROWS,
    tolerance: float = PARITY_TOLERANCE,
    batch_rows: int = BATCH_ROWS,
    validate: Validator | None = None,
    keep_history: bool = True,
    run_id: str | None = None,
    progress: Progress | None = None,
) -> ScoreResult:
    """Score every profile that existed before ``as_of`` and write the output table.

    ``models`` are registry references (``"churn"`` = the active or latest version,
    ``"churn@3"``) or loaded models; several models are joined on the profile into one table.
    ``as_of`` is a date (default: the day after the latest event). ``method`` is ``auto`` (in the
    warehouse when the model translates and passes the parity check, else streamed),
    ``warehouse`` (fail rather than stream) or ``streamed``. ``validate`` sees the staged table
    before the swap (see :func:`~sqltraits_kit.traits.output.write_output`).
    """
    started = time.perf_counter()
    report = progress or (lambda _m, _f: None)
    options = _Options(method, parity_rows, tolerance, batch_rows)
    _check_options(wh, table, id_column, options)
    report("loading the models", 0.0)
    plan = _plan(wh, models, registry, as_of, id_column, run_id)
    timings: dict[str, float] = {}
    scratch = Scratch(wh)
    try:
        t0 = time.perf_counter()
        features, ids, total = _features(wh, scratch, plan, report)
        if features:
            timings["features"] = time.perf_counter() - t0
        report(f"{total:,} profiles to score", 0.2)
        runs, results = _score_models(
            wh, scratch, plan, features, ids, total, options, report, timings
        )
        t_write = time.perf_counter()
        written = write_output(
            wh,
            _output(ids, results, plan, id_column),
            table=table,
            id_column=id_column,
            run_id=plan.run_id,
            validate=validate,
            keep_history=keep_history,
            progress=sub_progress(report, 0.85, 1.0),
        )
        timings["write"] = time.perf_counter() - t_write
        # What an outcome needs later: the as-of date and the models (with their horizons).
        record_score_run(
            wh,
            table=table,
            run_id=plan.run_id,
            as_of=plan.when,
            scored_at=plan.scored_at,
            models=[_model_record(m) for m in plan.models],
        )
    finally:
        scratch.drop_all()
    report(f"wrote {written.rows:,} rows to {table}", 1.0)
    return ScoreResult(
        table=table,
        history_table=written.history_table,
        run_id=plan.run_id,
        id_column=id_column,
        rows=written.rows,
        as_of=plan.when,
        scored_at=plan.scored_at,
        models=tuple(runs),
        columns=written.columns,
        atomic=written.atomic,
        seconds=time.perf_counter() - started,
        timings=timings,
        notes=tuple(plan.notes),
    )
