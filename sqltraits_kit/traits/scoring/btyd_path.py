"""BG/NBD + Gamma-Gamma models: closed forms in SQL with the 2F1 factor looked up per distinct
(frequency, T) pair, checked against the numpy models on a sample, or streamed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from sqltraits_kit.errors import ConfigError, DataError
from sqltraits_kit.traits.scoring.models import ModelRun, ScoredModel
from sqltraits_kit.traits.scoring.scratch import (
    Scratch,
    max_diff,
    stream_to_table,
    sub_progress,
    systematic_sample,
)
from sqltraits_kit.traits.sql_models import NotTranslatable, btyd_purchase_factor, btyd_scores

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd
    import pyarrow as pa

    from sqltraits_kit.warehouse import Warehouse

__all__ = ["BTYD_OUTPUTS", "btyd_numpy", "score_btyd"]

BTYD_OUTPUTS = ("p_alive", "p_no_purchase", "expected_purchases", "expected_spend")


def btyd_base(
    wh: Warehouse, scratch: Scratch, m: ScoredModel, ids: ir.Table, as_of: dt.datetime
) -> ir.Table:
    """profile_id + the RFM summary in weeks (zeros without orders), as in training."""
    from sqltraits_kit.modelling.rfm import rfm_as_of

    rfm = rfm_as_of(wh, m.mapping, as_of, id_type=ids.schema()["profile_id"])
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


def btyd_numpy(model: Any, frame: pd.DataFrame, horizon_days: float) -> dict[str, np.ndarray]:
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


def btyd_names(m: ScoredModel) -> dict[str, str]:
    return dict(zip(BTYD_OUTPUTS, m.columns, strict=True))


def btyd_in_warehouse(
    wh: Warehouse,
    scratch: Scratch,
    m: ScoredModel,
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

    lookup = stream_to_table(
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
    names = btyd_names(m)
    return joined.mutate(**{names[k]: scores[k] for k in BTYD_OUTPUTS}), n_pairs


def stream_btyd(
    wh: Warehouse,
    scratch: Scratch,
    m: ScoredModel,
    base: ir.Table,
    *,
    total: int,
    batch_rows: int,
    report: Callable[[str, float], None],
) -> ir.Table:
    import pyarrow as pa

    names = btyd_names(m)
    id_type = base.schema()["profile_id"].to_pyarrow()
    schema = pa.schema(
        [pa.field("profile_id", id_type)] + [pa.field(names[k], pa.float64()) for k in names]
    )
    horizon = float(m.card.horizon_days)

    def compute(batch: pa.RecordBatch) -> pa.Table:
        try:
            values = btyd_numpy(m.loaded.model, batch.to_pandas(), horizon)
        except (ValueError, RuntimeError) as exc:
            raise DataError(f"model {m.card.ref}: {exc}") from None
        arrays = [batch.column("profile_id")] + [pa.array(values[k]) for k in BTYD_OUTPUTS]
        return pa.table(arrays, schema=schema)

    return stream_to_table(
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


def score_btyd(
    wh: Warehouse,
    scratch: Scratch,
    m: ScoredModel,
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
    base = btyd_base(wh, scratch, m, ids, when)
    stream = sub_progress(report, 0.5, 1.0)
    if method == "streamed":
        result = stream_btyd(
            wh, scratch, m, base, total=total, batch_rows=batch_rows, report=stream
        )
        return ModelRun(path="streamed", reason="streaming was requested", **common), result
    try:
        scored, n_pairs = btyd_in_warehouse(
            wh, scratch, m, base, batch_rows=batch_rows, report=sub_progress(report, 0.2, 0.5)
        )
    except NotTranslatable as exc:
        if method == "warehouse":
            raise ConfigError(
                f"model {m.card.ref} cannot be scored in the warehouse: {exc}"
            ) from None
        result = stream_btyd(
            wh, scratch, m, base, total=total, batch_rows=batch_rows, report=stream
        )
        return ModelRun(path="streamed", reason=f"no SQL translation: {exc}", **common), result
    report(f"{m.card.ref}: checking in-warehouse scores against the numpy models", 0.5)
    names = btyd_names(m)
    result = scored.select("profile_id", *names.values())
    frame = systematic_sample(scored, total, parity_rows).to_pandas()
    reference = btyd_numpy(m.loaded.model, frame, float(m.card.horizon_days))
    diff = max(max_diff(reference[k], frame[names[k]].to_numpy(dtype=float)) for k in names)
    parity = {"parity_max_diff": diff, "parity_rows": len(frame)}
    if diff > tolerance:
        reason = (
            f"parity check failed: max |SQL - numpy| = {diff:.3g} > {tolerance:g} "
            f"on {len(frame):,} rows"
        )
        if method == "warehouse":
            raise DataError(f"model {m.card.ref}: {reason}")
        result = stream_btyd(
            wh, scratch, m, base, total=total, batch_rows=batch_rows, report=stream
        )
        return ModelRun(path="streamed", reason=reason, **parity, **common), result
    reason = (
        f"closed forms in SQL, 2F1 looked up for {n_pairs:,} distinct (frequency, T) pairs; "
        f"max |SQL - numpy| = {diff:.3g} on {len(frame):,} rows"
    )
    return ModelRun(path="warehouse", reason=reason, **parity, **common), result
