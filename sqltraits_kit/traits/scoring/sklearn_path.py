"""scikit-learn models: translated to SQL and checked against scikit-learn on a sample, or
streamed through the fitted model."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import ConfigError, DataError, SqlTraitsError
from sqltraits_kit.traits.scoring.models import ModelRun, ScoredModel, predict_scores
from sqltraits_kit.traits.scoring.scratch import (
    Scratch,
    max_diff,
    stream_to_table,
    systematic_sample,
)
from sqltraits_kit.traits.sql_models import NotTranslatable, pipeline_to_ibis

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pyarrow as pa

    from sqltraits_kit.warehouse import Warehouse

__all__ = ["plan_sklearn", "sklearn_expr", "stream_sklearn"]


def sklearn_expr(m: ScoredModel, features: ir.Table) -> ir.FloatingValue:
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


def sklearn_parity(
    m: ScoredModel, features: ir.Table, expr: ir.FloatingValue, total: int, rows: int
) -> tuple[float, int]:
    sample = systematic_sample(features.mutate(_sqltraits_score=expr), total, rows)
    frame = sample.to_pandas()
    reference = predict_scores(m.loaded.model, m.card.kind, frame[m.features])
    return max_diff(reference, frame["_sqltraits_score"].to_numpy(dtype=float)), len(frame)


def plan_sklearn(
    m: ScoredModel,
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
        expr = sklearn_expr(m, features)
    except NotTranslatable as exc:
        if method == "warehouse":
            raise ConfigError(
                f"model {m.card.ref} cannot be scored in the warehouse: {exc}"
            ) from None
        return ModelRun(path="streamed", reason=f"no SQL translation: {exc}", **common), None
    report(f"{m.card.ref}: checking in-warehouse scores against scikit-learn", 0.2)
    diff, n = sklearn_parity(m, features, expr, total, parity_rows)
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


def stream_sklearn(
    wh: Warehouse,
    scratch: Scratch,
    features: ir.Table,
    group: list[ScoredModel],
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
    # The kit's own estimators predict without changing themselves, so batches score in
    # parallel; a pipeline registered from outside might not (a custom step that caches in
    # predict): it scores one batch at a time.
    outside = any(m.card.origin for m in group)
    return stream_to_table(
        wh,
        scratch,
        features,
        compute,
        schema=schema,
        batch_rows=batch_rows,
        total=total,
        report=report,
        label=f"streaming features through {refs}",
        threads=1 if outside else None,
    )
