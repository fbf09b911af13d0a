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
  the features leave the warehouse in Arrow batches of ``batch_rows``, the fitted model scores
  each batch, the scores go to a Parquet staging file, and only once the read is finished are
  they loaded back. Writing while the read is still open would hit ibis #9444 (on DuckDB the
  iteration silently stops after the first batch), so the two never overlap. Memory stays at a
  batch or two whatever the number of profiles.

Features are built in the warehouse exactly as in training
(:func:`~sqltraits_kit.modelling.features.
build_features` with the model card's mapping and windows) and materialised once per run in a
temporary table, which the parity sample, the in-warehouse scores and the stream all read.

The results of every model are joined on the profile id into one row per profile, with the
run's metadata, and handed to :func:`sqltraits_kit.traits.output.write_output` (staging, checks,
atomic swap, history).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import math
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sqltraits_kit.errors import ConfigError, DataError, ModelLoadError, SqlTraitsError
from sqltraits_kit.modelling.features import TableMapping, build_features, data_end, to_instant
from sqltraits_kit.traits.output import METADATA_COLUMNS, check_table_name, new_run_id, write_output
from sqltraits_kit.traits.sql_models import (
    NotTranslatable,
    btyd_purchase_factor,
    btyd_scores,
    pipeline_to_ibis,
)

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd
    import pyarrow as pa

    from sqltraits_kit.modelling.registry import LoadedModel, ModelCard, Registry
    from sqltraits_kit.traits.output import Validator
    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "DEFAULT_OUTPUT_TABLE",
    "METHODS",
    "PARITY_TOLERANCE",
    "ModelRun",
    "ScoreResult",
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
_TMP_PREFIX = "_sqltraits_tmp_"

Progress = Callable[[str, float], None]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ModelRun:
    """How one model was scored."""

    ref: str
    kind: str
    columns: tuple[str, ...]
    path: str  # "warehouse" | "streamed"
    reason: str
    parity_max_diff: float | None = None
    parity_rows: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ScoreResult:
    """One scoring run: where it wrote, how many rows, and which path each model took."""

    table: str
    history_table: str | None
    run_id: str
    id_column: str
    rows: int
    as_of: dt.datetime
    scored_at: dt.datetime
    models: tuple[ModelRun, ...]
    columns: tuple[str, ...]
    atomic: bool
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["as_of"] = self.as_of.date().isoformat()
        out["scored_at"] = self.scored_at.isoformat()
        out["models"] = [m.to_dict() for m in self.models]
        out["timings"] = {k: round(v, 3) for k, v in self.timings.items()}
        return out


# --------------------------------------------------------------------------- helpers


def trait_columns(card: ModelCard, /) -> list[str]:
    """The output columns a model writes, from its kind (and horizon for BTYD)."""
    if card.kind == "churn":
        return ["churn_probability"]
    if card.kind == "ltv":
        return ["predicted_ltv"]
    if card.kind == "btyd":
        h = int(card.horizon_days)
        return [
            "p_alive",
            f"p_no_purchase_{h}d",
            f"expected_purchases_{h}d",
            f"expected_spend_{h}d",
        ]
    raise ModelLoadError(f"model {card.ref} has unknown kind {card.kind!r}")


def predict_scores(model: Any, kind: str, frame: pd.DataFrame) -> np.ndarray:
    """The reference scores, straight from scikit-learn, as training evaluated them: the
    probability of class 1 for churn, the prediction clipped at 0 for LTV."""
    if kind == "churn":
        classes = list(model.classes_)
        if 1 not in classes:
            raise ModelLoadError(f"churn model has no class 1 (classes: {classes})")
        return np.asarray(model.predict_proba(frame)[:, classes.index(1)], dtype=float)
    return np.clip(np.asarray(model.predict(frame), dtype=float), 0.0, None)


def _day(when: dt.datetime) -> dt.datetime:
    return dt.datetime(when.year, when.month, when.day)


def default_as_of(wh: Warehouse, mapping: TableMapping | None = None) -> dt.date:
    """The day after the latest event: scores then see every event the warehouse holds."""
    return (_day(data_end(wh, mapping or TableMapping())) + dt.timedelta(days=1)).date()


def _as_of(value: Any) -> dt.datetime:
    when = to_instant(value, name="as_of")
    if when != _day(when):
        raise ConfigError(
            f"as_of must be a date (scores are as of midnight UTC), got {value!r}; "
            f"use {when.date().isoformat()} or {(when.date() + dt.timedelta(days=1)).isoformat()}"
        )
    return when


@dataclass
class _Model:
    loaded: LoadedModel
    columns: list[str]
    mapping: TableMapping
    windows: tuple[int, ...]
    features: list[str]  # in the order the fitted model takes them, whatever the card's order

    @property
    def card(self) -> ModelCard:
        return self.loaded.card

    @property
    def feature_key(self) -> str:
        spec = self.card.feature_spec
        return json.dumps([self.mapping.to_dict(), list(self.windows), spec], sort_keys=True)


def _resolve(models: Any, registry: Registry | str | Path | None) -> list[_Model]:
    from sqltraits_kit.modelling.registry import LoadedModel, Registry, parse_ref

    items = [models] if isinstance(models, str | LoadedModel) else list(models or [])
    if not items:
        raise ConfigError("no model to score with: name at least one (NAME or NAME@VERSION)")
    reg = registry if isinstance(registry, Registry) else Registry(registry or "models")
    out: list[_Model] = []
    for item in items:
        if isinstance(item, str):
            name, version = parse_ref(item)
            loaded = reg.load(name, version)
        elif isinstance(item, LoadedModel):
            loaded = item
        else:
            raise ConfigError(f"a model is NAME, NAME@VERSION or a LoadedModel, got {item!r}")
        card = loaded.card
        try:
            mapping = TableMapping.from_dict(card.mapping or {})
        except ConfigError as exc:
            raise ModelLoadError(f"model {card.ref}: its table mapping is invalid: {exc}") from None
        windows = tuple(card.windows or ())
        out.append(_Model(loaded, trait_columns(card), mapping, windows, loaded.features))
    refs = [m.card.ref for m in out]
    if len(set(refs)) != len(refs):
        raise ConfigError(f"the same model version is named twice: {', '.join(refs)}")
    seen: dict[str, str] = {}
    for m in out:
        for c in m.columns:
            if c in seen:
                raise ConfigError(
                    f"models {seen[c]} and {m.card.ref} both write column {c!r}: score them into "
                    "separate output tables"
                )
            seen[c] = m.card.ref
    first = out[0].mapping
    for m in out[1:]:
        if (m.mapping.profiles_table, m.mapping.profile_id) != (
            first.profiles_table,
            first.profile_id,
        ):
            raise ConfigError(
                f"models {out[0].card.ref} and {m.card.ref} score different profiles "
                f"({first.profiles_table}.{first.profile_id} vs "
                f"{m.mapping.profiles_table}.{m.mapping.profile_id}): use separate output tables"
            )
    return out


class _Scratch:
    """Temporary tables of one run, dropped at the end whatever happens."""

    def __init__(self, wh: Warehouse) -> None:
        self.wh = wh
        self.names: list[str] = []

    def name(self) -> str:
        name = f"{_TMP_PREFIX}{uuid.uuid4().hex[:16]}"
        self.names.append(name)
        return name

    def table(self, expr: ir.Table) -> ir.Table:
        return self.wh.con.create_table(self.name(), expr, temp=True)

    def drop_all(self) -> None:
        for name in reversed(self.names):
            # a temporary table also goes with the connection: a failed drop is harmless
            with contextlib.suppress(Exception):
                self.wh.con.drop_table(name, force=True)
        self.names.clear()


def _systematic_sample(table: ir.Table, total: int, rows: int) -> ir.Table:
    """Every k-th row by profile id: deterministic, portable, spread over the whole range."""
    import ibis

    step = max(1, total // max(rows, 1))
    numbered = table.mutate(_sqltraits_rn=ibis.row_number().over(order_by=table.profile_id))
    picked = numbered.filter(numbered._sqltraits_rn % step == 0).drop("_sqltraits_rn")
    return picked.order_by("profile_id").limit(rows)


def _max_diff(reference: np.ndarray, candidate: np.ndarray) -> float:
    ref = np.asarray(reference, dtype=float)
    got = np.asarray(candidate, dtype=float)
    both_missing = np.isnan(ref) & np.isnan(got)
    diff = np.where(both_missing, 0.0, np.abs(ref - got))
    diff = np.where(np.isnan(diff), np.inf, diff)
    return float(diff.max()) if diff.size else 0.0


def _stream_to_table(
    wh: Warehouse,
    scratch: _Scratch,
    source: ir.Table,
    compute: Callable[[pa.RecordBatch], pa.Table],
    *,
    schema: pa.Schema,
    batch_rows: int,
    total: int,
    report: Callable[[str, float], None],
    label: str,
) -> ir.Table:
    """Read ``source`` in Arrow batches, ``compute`` each, stage to Parquet, then load it back.

    The load starts only after the read has finished (ibis #9444), from a Parquet file on disk,
    so neither the read nor the write holds more than a batch in memory.
    """
    import ibis
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="sqltraits_score_", dir=wh.scratch_dir) as folder:
        path = Path(folder) / "scores.parquet"
        done = 0
        with pq.ParquetWriter(path, schema) as writer:
            reader = source.to_pyarrow_batches(chunk_size=batch_rows)
            try:
                for batch in reader:
                    if not batch.num_rows:
                        continue
                    out = compute(batch)
                    writer.write_table(out.cast(schema))
                    done += batch.num_rows
                    report(f"{label}: {done:,}/{total:,} rows", done / max(total, 1))
            finally:
                close = getattr(reader, "close", None)
                if close is not None:
                    close()
        if done != total:
            raise DataError(
                f"{label}: read {done:,} of {total:,} rows from the warehouse; the scores were "
                "not written"
            )
        name = scratch.name()
        target = wh.con.create_table(name, schema=ibis.Schema.from_pyarrow(schema), temp=True)
        report(f"{label}: loading {done:,} scores back into the warehouse", 1.0)
        try:
            view = f"{name}_parquet"
            staged = wh.con.read_parquet(path, table_name=view)
        except NotImplementedError:
            staged = None
        if staged is not None:
            wh.con.insert(name, staged)
            with contextlib.suppress(Exception):  # the view dies with the connection anyway
                wh.con.drop_view(view, force=True)
        else:
            for part in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
                batch = ibis.memtable(pa.Table.from_batches([part]))
                wh.con.insert(name, batch)
                # Ibis keeps a memtable's copy until the process exits: drop it now so the
                # warehouse holds one batch at a time, not the whole column twice.
                with contextlib.suppress(Exception):
                    wh.con.drop_table(batch.get_name(), force=True)
    return target


# --------------------------------------------------------------------------- sklearn models


def _sklearn_expr(m: _Model, features: ir.Table) -> ir.FloatingValue:
    import ibis

    kind = m.card.kind
    expr = pipeline_to_ibis(
        m.loaded.model,
        features,
        features=m.features,
        output="proba" if kind == "churn" else "predict",
        positive_class=1,
    )
    if kind == "ltv":  # as training evaluated it: a value is never negative
        expr = ibis.ifelse(expr < 0.0, 0.0, expr)
    return expr


def _sklearn_parity(
    m: _Model, features: ir.Table, expr: ir.FloatingValue, total: int, rows: int
) -> tuple[float, int]:
    sample = _systematic_sample(features.mutate(_sqltraits_score=expr), total, rows)
    frame = sample.to_pandas()
    reference = predict_scores(m.loaded.model, m.card.kind, frame[m.features])
    return _max_diff(reference, frame["_sqltraits_score"].to_numpy(dtype=float)), len(frame)


def _stream_sklearn(
    wh: Warehouse,
    scratch: _Scratch,
    features: ir.Table,
    group: list[_Model],
    *,
    total: int,
    batch_rows: int,
    report: Callable[[str, float], None],
) -> ir.Table:
    import pyarrow as pa

    id_type = features.schema()["profile_id"].to_pyarrow()
    fields = [pa.field("profile_id", id_type)]
    fields += [pa.field(c, pa.float64()) for m in group for c in m.columns]
    schema = pa.schema(fields)

    def compute(batch: pa.RecordBatch) -> pa.Table:
        frame = batch.to_pandas()
        arrays: dict[str, Any] = {"profile_id": batch.column("profile_id")}
        for m in group:
            try:
                values = predict_scores(m.loaded.model, m.card.kind, frame[m.features])
            except SqlTraitsError:
                raise
            except Exception as exc:
                raise DataError(
                    f"model {m.card.ref} failed on a batch of features: {type(exc).__name__}: {exc}"
                ) from None
            arrays[m.columns[0]] = pa.array(values, type=pa.float64())
        return pa.table(arrays, schema=schema)

    refs = ", ".join(m.card.ref for m in group)
    return _stream_to_table(
        wh,
        scratch,
        features,
        compute,
        schema=schema,
        batch_rows=batch_rows,
        total=total,
        report=report,
        label=f"streaming features through {refs}",
    )


# --------------------------------------------------------------------------- BTYD models


_BTYD_OUTPUTS = ("p_alive", "p_no_purchase", "expected_purchases", "expected_spend")


def _btyd_base(
    wh: Warehouse, scratch: _Scratch, m: _Model, ids: ir.Table, as_of: dt.datetime
) -> ir.Table:
    """profile_id + the RFM summary in weeks (zeros without orders), as in training."""
    from sqltraits_kit.modelling.btyd import rfm_summary

    mapping = m.mapping
    rfm = rfm_summary(
        wh.table(mapping.orders_table),
        customer_id=mapping.order_profile_id,
        timestamp=mapping.order_timestamp,
        amount=mapping.order_revenue,
        # whole days up to the day before the (midnight) as-of date, like training's cutoff
        calibration_end=(as_of - dt.timedelta(days=1)).date(),
        time_unit="W",
    )
    id_type = ids.schema()["profile_id"]
    cid = rfm.customer_id if rfm.customer_id.type() == id_type else rfm.customer_id.cast(id_type)
    rfm = rfm.mutate(customer_id=cid)
    joined = ids.left_join(rfm, ids.profile_id == rfm.customer_id)
    T = joined["T"].fill_null(0.0).cast("float64")
    base = joined.select(
        profile_id=joined.profile_id,
        frequency=joined.frequency.fill_null(0).cast("int64"),
        recency=joined.recency.fill_null(0.0).cast("float64"),
        T=T,
        monetary_value=joined.monetary_value.fill_null(0.0).cast("float64"),
        # T is a whole number of days over 7: the day count is the lookup's exact key
        t_days=(T * 7.0).round().cast("int64"),
    )
    return scratch.table(base)


def _btyd_numpy(model: Any, frame: pd.DataFrame, horizon_days: float) -> dict[str, np.ndarray]:
    """The reference: the numpy BG/NBD + Gamma-Gamma of :mod:`sqltraits_kit.modelling.btyd`."""
    x, tx, T, mv = (
        frame[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T", "monetary_value")
    )
    t = float(horizon_days) / 7.0
    bg, gg = model.bgnbd, model.gamma_gamma
    purchases = np.asarray(bg.conditional_expected_purchases(t, x, tx, T), dtype=float)
    return {
        "p_alive": np.asarray(bg.probability_alive(x, tx, T), dtype=float),
        "p_no_purchase": np.asarray(bg.probability_no_purchase(t, x, tx, T), dtype=float),
        "expected_purchases": purchases,
        "expected_spend": purchases * np.asarray(gg.conditional_expected_spend(x, mv)),
    }


def _btyd_names(m: _Model) -> dict[str, str]:
    return dict(zip(_BTYD_OUTPUTS, m.columns, strict=True))


def _btyd_in_warehouse(
    wh: Warehouse,
    scratch: _Scratch,
    m: _Model,
    base: ir.Table,
    *,
    batch_rows: int,
    report: Callable[[str, float], None],
) -> tuple[ir.Table, int]:
    """Closed forms in Ibis, 2F1 through a lookup over distinct (frequency, t_days)."""
    import pyarrow as pa

    params = m.card.params or {}
    horizon = float(m.card.horizon_days)
    pairs = base.select("frequency", "t_days").distinct()
    n_pairs = int(pairs.count().execute())
    schema = pa.schema(
        [("frequency", pa.int64()), ("t_days", pa.int64()), ("purchase_factor", pa.float64())]
    )

    def compute(batch: pa.RecordBatch) -> pa.Table:
        x = batch.column("frequency").to_numpy(zero_copy_only=False).astype(float)
        days = batch.column("t_days").to_numpy(zero_copy_only=False).astype(float)
        factor = btyd_purchase_factor(params, x, days / 7.0, horizon_days=horizon)
        return pa.table(
            [batch.column("frequency"), batch.column("t_days"), pa.array(factor)], schema=schema
        )

    lookup = _stream_to_table(
        wh,
        scratch,
        pairs,
        compute,
        schema=schema,
        batch_rows=batch_rows,
        total=n_pairs,
        report=report,
        label=f"{m.card.ref}: 2F1 for distinct (frequency, T)",
    )
    joined = base.join(lookup, ["frequency", "t_days"])
    scores = btyd_scores(joined, params, horizon_days=horizon, purchase_factor="purchase_factor")
    names = _btyd_names(m)
    return joined.mutate(**{names[k]: scores[k] for k in _BTYD_OUTPUTS}), n_pairs


def _stream_btyd(
    wh: Warehouse,
    scratch: _Scratch,
    m: _Model,
    base: ir.Table,
    *,
    total: int,
    batch_rows: int,
    report: Callable[[str, float], None],
) -> ir.Table:
    import pyarrow as pa

    names = _btyd_names(m)
    id_type = base.schema()["profile_id"].to_pyarrow()
    schema = pa.schema(
        [pa.field("profile_id", id_type)] + [pa.field(names[k], pa.float64()) for k in names]
    )
    horizon = float(m.card.horizon_days)

    def compute(batch: pa.RecordBatch) -> pa.Table:
        try:
            values = _btyd_numpy(m.loaded.model, batch.to_pandas(), horizon)
        except (ValueError, RuntimeError) as exc:
            raise DataError(f"model {m.card.ref}: {exc}") from None
        arrays = [batch.column("profile_id")] + [pa.array(values[k]) for k in _BTYD_OUTPUTS]
        return pa.table(arrays, schema=schema)

    return _stream_to_table(
        wh,
        scratch,
        base,
        compute,
        schema=schema,
        batch_rows=batch_rows,
        total=total,
        report=report,
        label=f"streaming RFM through {m.card.ref}",
    )


# --------------------------------------------------------------------------- the run


def _sub(report: Progress, start: float, end: float) -> Callable[[str, float], None]:
    def inner(message: str, fraction: float) -> None:
        report(message, start + (end - start) * min(max(fraction, 0.0), 1.0))

    return inner


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
    import ibis

    started = time.perf_counter()
    report = progress or (lambda _m, _f: None)
    timings: dict[str, float] = {}
    notes: list[str] = []
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    check_table_name(table)
    check_table_name(id_column, what="identifier column")
    if not 1 <= int(parity_rows) <= 1_000_000:
        raise ConfigError(f"parity_rows must be between 1 and 1,000,000, got {parity_rows}")
    if not tolerance >= 0 or not math.isfinite(tolerance):
        raise ConfigError(f"tolerance must be a finite number >= 0, got {tolerance}")
    if int(batch_rows) < 1:
        raise ConfigError(f"batch_rows must be at least 1, got {batch_rows}")
    if wh.read_only:
        raise ConfigError(f"{wh.display_url} is open read-only: scoring writes {table!r}")
    if wh.has_table(table):
        existing = wh.con.table(table).columns
        if not all(c in existing for c in METADATA_COLUMNS):
            # Never replace an input table (users, order_completed...) with scores.
            raise ConfigError(
                f"{table!r} exists and is not an output table (it has no "
                f"{', '.join(METADATA_COLUMNS)} columns); choose another name"
            )

    report("loading the models", 0.0)
    resolved = _resolve(models, registry)
    taken = {id_column, "model_name", "model_version", "scored_at", "run_id"}
    clash = [c for m in resolved for c in m.columns if c in taken]
    if clash:
        raise ConfigError(f"column {clash[0]!r} is both a trait and the identifier/run metadata")
    mappings = {json.dumps(m.mapping.to_dict(), sort_keys=True): m.mapping for m in resolved}
    for mapping in mappings.values():
        mapping.validate(wh)
    if as_of is None:
        when = max(_day(data_end(wh, mp)) for mp in mappings.values()) + dt.timedelta(days=1)
    else:
        when = _as_of(as_of)
    scored_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    run_id = run_id or new_run_id(scored_at)
    for m in resolved:
        if m.card.cutoff and when.date().isoformat() < m.card.cutoff:
            notes.append(f"{m.card.ref} was trained at cutoff {m.card.cutoff}, after as_of")
        if m.features != list(m.card.features):
            notes.append(f"{m.card.ref}: its card lists the features in another order than the "
                         "model was fitted with; scored in the model's order")  # fmt: skip

    scratch = _Scratch(wh)
    runs: list[ModelRun] = []
    results: list[ir.Table] = []
    try:
        # ---- features, once per (mapping, windows), materialised for every reader
        t0 = time.perf_counter()
        feature_tables: dict[str, ir.Table] = {}
        sklearn = [m for m in resolved if m.card.kind != "btyd"]
        for i, m in enumerate(sklearn):
            if m.feature_key not in feature_tables:
                report(f"building features as of {when.date()} in the warehouse", 0.02 + 0.01 * i)
                expr = build_features(
                    wh, m.mapping, as_of=when, windows=m.windows, spec=m.card.feature_spec
                )
                feature_tables[m.feature_key] = scratch.table(expr)
        if feature_tables:
            timings["features"] = time.perf_counter() - t0
            ids = next(iter(feature_tables.values())).select("profile_id")
        else:
            from sqltraits_kit.modelling.features import _profiles

            ids = scratch.table(_profiles(wh, resolved[0].mapping, when).select("profile_id"))
        total = int(ids.count().execute())
        if total == 0:
            raise DataError(
                f"no profile in {resolved[0].mapping.profiles_table!r} existed before "
                f"{when.date()}: nothing to score"
            )
        report(f"{total:,} profiles to score", 0.2)

        # ---- each model: in the warehouse if proven equal, else streamed
        streamed: dict[str, list[_Model]] = {}
        span = 0.55 / len(resolved)
        for i, m in enumerate(resolved):
            step = _sub(report, 0.2 + span * i, 0.2 + span * (i + 1))
            t_model = time.perf_counter()
            if m.card.kind == "btyd":
                run, result = _score_btyd(
                    wh,
                    scratch,
                    m,
                    ids,
                    when,
                    method=method,
                    total=total,
                    parity_rows=parity_rows,
                    tolerance=tolerance,
                    batch_rows=batch_rows,
                    report=step,
                )
                results.append(result)
            else:
                features = feature_tables[m.feature_key]
                run, expr = _plan_sklearn(
                    m,
                    features,
                    method=method,
                    total=total,
                    parity_rows=parity_rows,
                    tolerance=tolerance,
                    report=step,
                )
                if expr is None:
                    streamed.setdefault(m.feature_key, []).append(m)
                else:
                    results.append(features.select("profile_id", **{m.columns[0]: expr}))
            runs.append(dataclasses.replace(run, seconds=time.perf_counter() - t_model))
        timings["models"] = sum(r.seconds for r in runs)

        if streamed:
            t_stream = time.perf_counter()
            n_groups = len(streamed)
            for j, (key, group) in enumerate(streamed.items()):
                step = _sub(report, 0.75 + 0.1 * j / n_groups, 0.75 + 0.1 * (j + 1) / n_groups)
                results.append(
                    _stream_sklearn(
                        wh,
                        scratch,
                        feature_tables[key],
                        group,
                        total=total,
                        batch_rows=batch_rows,
                        report=step,
                    )
                )
            timings["streaming"] = time.perf_counter() - t_stream

        # ---- one row per profile: identifier, traits in model order, run metadata
        joined = ids
        for k, res in enumerate(results):
            renamed = res.view().rename(**{f"_sqltraits_pid_{k}": "profile_id"})
            joined = joined.left_join(renamed, joined.profile_id == renamed[f"_sqltraits_pid_{k}"])
        columns = [c for m in resolved for c in m.columns]
        cards = [m.card for m in resolved]
        output = joined.select(
            **{id_column: joined.profile_id},
            **{c: joined[c].cast("float64") for c in columns},
            model_name=ibis.literal(",".join(c.name for c in cards)),
            model_version=ibis.literal(",".join(str(c.version) for c in cards)),
            scored_at=ibis.literal(scored_at, type="timestamp('UTC')"),
            run_id=ibis.literal(run_id),
        )
        t_write = time.perf_counter()
        written = write_output(
            wh,
            output,
            table=table,
            id_column=id_column,
            run_id=run_id,
            validate=validate,
            keep_history=keep_history,
            progress=_sub(report, 0.85, 1.0),
        )
        timings["write"] = time.perf_counter() - t_write
    finally:
        scratch.drop_all()
    report(f"wrote {written.rows:,} rows to {table}", 1.0)
    return ScoreResult(
        table=table,
        history_table=written.history_table,
        run_id=run_id,
        id_column=id_column,
        rows=written.rows,
        as_of=when,
        scored_at=scored_at,
        models=tuple(runs),
        columns=written.columns,
        atomic=written.atomic,
        seconds=time.perf_counter() - started,
        timings=timings,
        notes=tuple(notes),
    )


def _plan_sklearn(
    m: _Model,
    features: ir.Table,
    *,
    method: str,
    total: int,
    parity_rows: int,
    tolerance: float,
    report: Callable[[str, float], None],
) -> tuple[ModelRun, ir.FloatingValue | None]:
    """The model's in-warehouse expression if it translates and matches, else None (stream)."""
    common = {"ref": m.card.ref, "kind": m.card.kind, "columns": tuple(m.columns)}
    if method == "streamed":
        return ModelRun(path="streamed", reason="streaming was requested", **common), None
    try:
        expr = _sklearn_expr(m, features)
    except NotTranslatable as exc:
        if method == "warehouse":
            raise ConfigError(
                f"model {m.card.ref} cannot be scored in the warehouse: {exc}"
            ) from None
        return ModelRun(path="streamed", reason=f"no SQL translation: {exc}", **common), None
    report(f"{m.card.ref}: checking in-warehouse scores against scikit-learn", 0.2)
    diff, n = _sklearn_parity(m, features, expr, total, parity_rows)
    parity = {"parity_max_diff": diff, "parity_rows": n}
    if diff > tolerance:
        reason = (
            f"parity check failed: max |SQL - scikit-learn| = {diff:.3g} > {tolerance:g} "
            f"on {n:,} rows"
        )
        if method == "warehouse":
            raise DataError(f"model {m.card.ref}: {reason}")
        return ModelRun(path="streamed", reason=reason, **parity, **common), None
    reason = f"translated to SQL; max |SQL - scikit-learn| = {diff:.3g} on {n:,} rows"
    return ModelRun(path="warehouse", reason=reason, **parity, **common), expr


def _score_btyd(
    wh: Warehouse,
    scratch: _Scratch,
    m: _Model,
    ids: ir.Table,
    when: dt.datetime,
    *,
    method: str,
    total: int,
    parity_rows: int,
    tolerance: float,
    batch_rows: int,
    report: Callable[[str, float], None],
) -> tuple[ModelRun, ir.Table]:
    common = {"ref": m.card.ref, "kind": m.card.kind, "columns": tuple(m.columns)}
    report(f"{m.card.ref}: RFM summary as of {when.date()} in the warehouse", 0.0)
    base = _btyd_base(wh, scratch, m, ids, when)
    stream = _sub(report, 0.5, 1.0)
    if method == "streamed":
        result = _stream_btyd(
            wh, scratch, m, base, total=total, batch_rows=batch_rows, report=stream
        )
        return ModelRun(path="streamed", reason="streaming was requested", **common), result
    try:
        scored, n_pairs = _btyd_in_warehouse(
            wh, scratch, m, base, batch_rows=batch_rows, report=_sub(report, 0.2, 0.5)
        )
    except NotTranslatable as exc:
        if method == "warehouse":
            raise ConfigError(
                f"model {m.card.ref} cannot be scored in the warehouse: {exc}"
            ) from None
        result = _stream_btyd(
            wh, scratch, m, base, total=total, batch_rows=batch_rows, report=stream
        )
        return ModelRun(path="streamed", reason=f"no SQL translation: {exc}", **common), result
    report(f"{m.card.ref}: checking in-warehouse scores against the numpy models", 0.5)
    names = _btyd_names(m)
    result = scored.select("profile_id", *names.values())
    frame = _systematic_sample(scored, total, parity_rows).to_pandas()
    reference = _btyd_numpy(m.loaded.model, frame, float(m.card.horizon_days))
    diff = max(_max_diff(reference[k], frame[names[k]].to_numpy(dtype=float)) for k in names)
    parity = {"parity_max_diff": diff, "parity_rows": len(frame)}
    if diff > tolerance:
        reason = (
            f"parity check failed: max |SQL - numpy| = {diff:.3g} > {tolerance:g} "
            f"on {len(frame):,} rows"
        )
        if method == "warehouse":
            raise DataError(f"model {m.card.ref}: {reason}")
        result = _stream_btyd(
            wh, scratch, m, base, total=total, batch_rows=batch_rows, report=stream
        )
        return ModelRun(path="streamed", reason=reason, **parity, **common), result
    reason = (
        f"closed forms in SQL, 2F1 looked up for {n_pairs:,} distinct (frequency, T) pairs; "
        f"max |SQL - numpy| = {diff:.3g} on {len(frame):,} rows"
    )
    return ModelRun(path="warehouse", reason=reason, **parity, **common), result
