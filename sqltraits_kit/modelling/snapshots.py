"""Snapshots: features, RFM and labels of every profile at one cutoff, pulled from the warehouse.

Training stacks snapshots taken a horizon apart, so the rows span several profile ages and
the model sees how behaviour changes with tenure (a customer is older when scored than when
its training snapshot was taken). The grid is anchored at the test cutoff ``t``::

    g0 = t, g1 = t - H, g2 = t - 2H, ...

and each use takes consecutive snapshots of it (see :func:`plan`). A snapshot's labels look at
``[g, g + H)``, so a set of snapshots whose latest is ``g_j`` has seen outcomes up to ``g_{j-1}``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from sqltraits_kit.modelling.features import (
    TableMapping,
    build_features,
    build_labels,
    profile_count,
)

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.warehouse import Warehouse

__all__ = ["RFM", "Plan", "Snapshot", "fingerprint", "plan", "pull", "stack"]

RFM = ("btyd_frequency", "btyd_recency", "btyd_T", "btyd_monetary")


@dataclass(frozen=True)
class Snapshot:
    """One cutoff's rows (``frame``) and how they were sampled (``step``: every k-th profile)."""

    cutoff: dt.datetime
    frame: pd.DataFrame
    step: int = 1

    @property
    def rows(self) -> int:
        return len(self.frame)


@dataclass(frozen=True)
class Plan:
    """Which grid snapshots each stage uses (indices into the grid, latest first)."""

    test: int  # evaluated on
    tested: tuple[int, ...]  # the tested model is fitted on these
    validation: int | None  # candidates are compared on this one (auto only)
    validation_fit: tuple[int, ...]  # ... after being fitted on these
    refit: tuple[int, ...]  # the model saved after testing is fitted on these


def plan(snapshots: int, *, validate: bool, refit: bool) -> Plan:
    """The stages over a grid of ``snapshots + 2`` cutoffs (validation needs one more)."""
    k = int(snapshots)
    return Plan(
        test=0,
        tested=tuple(range(1, k + 1)),
        validation=1 if validate else None,
        validation_fit=tuple(range(2, k + 2)) if validate else (),
        refit=tuple(range(0, k)) if refit else (),
    )


def _rfm(wh: Warehouse, mapping: TableMapping, cutoff: dt.datetime, id_type: Any) -> ir.Table:
    from sqltraits_kit.modelling.rfm import rfm_as_of

    rfm = rfm_as_of(wh, mapping, cutoff, id_type=id_type)  # the one scoring reads as well
    return rfm.select(
        profile_id=rfm.customer_id,
        btyd_frequency=rfm.frequency,
        btyd_recency=rfm.recency,
        btyd_T=rfm.T,
        btyd_monetary=rfm.monetary_value,
    )


def _sampled(expr: ir.Table, rows: int, max_rows: int | None) -> tuple[ir.Table, int]:
    """Every k-th profile by id when there are too many: deterministic, portable, unbiased in
    anything unrelated to the id order."""
    import ibis

    if not max_rows or rows <= max_rows:
        return expr, 1
    step = math.ceil(rows / max_rows)
    numbered = expr.mutate(_row=ibis.row_number().over(order_by=expr.profile_id))
    return numbered.filter(numbered._row % step == 0).drop("_row"), step


def pull(
    wh: Warehouse,
    mapping: TableMapping,
    *,
    cutoff: dt.datetime,
    horizon_days: int,
    windows: Sequence[int],
    churn_on: str,
    with_features: bool = True,
    with_rfm: bool = True,
    max_rows: int | None,
    spec: Any = None,
) -> Snapshot:
    """Features and/or RFM, plus labels, at one cutoff, as a pandas frame sorted by profile."""
    labels = build_labels(wh, mapping, cutoff=cutoff, horizon_days=horizon_days, churn_on=churn_on)
    expr = labels
    if with_features:
        feats = build_features(wh, mapping, as_of=cutoff, windows=windows, spec=spec)
        expr = feats.join(labels, "profile_id")
    if with_rfm:
        id_type = wh.table(mapping.profiles_table)[mapping.profile_id].type()
        expr = expr.left_join(_rfm(wh, mapping, cutoff, id_type), "profile_id")
    rows = profile_count(wh, mapping, as_of=cutoff)
    if rows == 0:
        return Snapshot(cutoff, expr.limit(0).to_pandas(), 1)
    expr, step = _sampled(expr, rows, max_rows)
    frame = expr.order_by("profile_id").to_pandas()
    if with_rfm:
        # No order before the cutoff: scored as a brand-new customer.
        frame[list(RFM)] = frame[list(RFM)].astype(float).fillna(0.0)
    return Snapshot(cutoff, frame, step)


def stack(snaps: Sequence[Snapshot]) -> pd.DataFrame:
    """The snapshots' rows one under the other (empty snapshots left out)."""
    frames = [s.frame for s in snaps if s.rows]
    if not frames:
        return snaps[0].frame if snaps else pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def fingerprint(frame: pd.DataFrame) -> str:
    """A digest of the rows a model was fitted on (same data on any backend, same digest)."""
    # Rounded, because backends differ in the last bits of computed floats (the same data
    # on DuckDB and PostgreSQL must give the same fingerprint).
    floats = frame.select_dtypes("float").columns
    frame = frame.assign(**{c: frame[c].round(6) for c in floats})
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(hashed.tobytes())
    return "sha256:" + digest.hexdigest()
