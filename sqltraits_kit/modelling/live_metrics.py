"""Live metrics computed in the warehouse: one table of (score, realised outcome, group) rows in,
a few numbers per group out. The same definitions as :mod:`.metrics` (which training uses on
pandas), so a live figure and a model card's out-of-time figure mean the same thing:

* **AUC** from the ranks of the scores, ties given their average rank (Mann-Whitney), with the
  Hanley-McNeil standard error;
* **top-decile lift**: the outcome among the top ``ceil(n/10)`` rows by score over the overall
  rate, every group of tied scores counted at its mean outcome (as :func:`.metrics._ranked`);
* **calibration**: the Brier score, the mean predicted probability minus the observed rate,
  and the expected calibration error over ten equal-width bins;
* **LTV**: MAE, total error in percent of the realised total, decile lift (mean outcome per
  score decile over the overall mean);
* **uplift** between treated and control rows: the difference in churn rate and in revenue per
  profile with Wald 95% intervals (normal approximation; each group needs a few dozen rows).

Everything runs as a handful of aggregate queries; only one row per group (and per decile or
bin) leaves the warehouse.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = [
    "Z95",
    "auc_standard_error",
    "churn_metrics",
    "ltv_metrics",
    "uplift",
]

#: The two-sided 95% normal quantile.
Z95 = 1.959963984540054
ALL = "all"
_BINS = 10


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def auc_standard_error(auc: float | None, positives: int, negatives: int) -> float | None:
    """Hanley & McNeil (1982): the standard error of an AUC from its class counts."""
    if auc is None or positives < 1 or negatives < 1:
        return None
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    var = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)
    ) / (positives * negatives)
    return math.sqrt(max(var, 0.0))


def _groups(t: ir.Table, by: str | None, **columns: Any) -> ir.Table:
    """``columns`` with ``_g``: every row once as :data:`ALL`, and once more under its group
    when ``by`` is given (one query then yields the overall figures and each group's)."""
    import ibis

    overall = t.select(_g=ibis.literal(ALL), **columns)
    if by is None:
        return overall
    label = t[by].cast("string").fill_null("(none)")
    label = ibis.ifelse(label == ALL, ALL + " (group)", label)  # never mixed with the overall
    return overall.union(t.select(_g=label, **columns), distinct=False)


def _base(t: ir.Table, score: str, actual: str, by: str | None) -> ir.Table:
    base = _groups(t, by, _p=t[score].cast("float64"), _y=t[actual].cast("float64"))
    return base.filter(base["_p"].notnull() & base["_y"].notnull() & ~base["_p"].isnan())


def _ranked(base: ir.Table) -> ir.Table:
    """Each row with its average rank (ascending, 1-based), its position by score descending,
    the group's size and the mean outcome of its tie group."""
    import ibis

    group = ibis.window(group_by=base["_g"])
    ties = ibis.window(group_by=[base["_g"], base["_p"]])
    up = ibis.window(group_by=base["_g"], order_by=base["_p"])
    down = ibis.window(group_by=base["_g"], order_by=[ibis.desc(base["_p"]), base["_y"]])
    return base.mutate(
        _r=ibis.rank().over(up).cast("float64") + (base.count().over(ties) + 1) / 2.0,
        _pos=ibis.row_number().over(down),
        _n=base.count().over(group),
        _ytie=base["_y"].mean().over(ties),
    )


def _deciles(ranked: ir.Table) -> dict[str, list[dict[str, Any]]]:
    """Per group: rows, mean score and mean outcome per decile of score (1 = highest)."""
    decile = (ranked["_pos"] * 10 / ranked["_n"]).floor().cast("int64") + 1
    table = ranked.mutate(_d=decile)
    rows = (
        table.group_by(["_g", "_d"])
        .aggregate(rows=table.count(), mean_score=table["_p"].mean(), mean=table["_ytie"].mean())
        .order_by(["_g", "_d"])
        .to_pyarrow()
        .to_pylist()
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["_g"], []).append(
            {
                "decile": int(row["_d"]),
                "rows": int(row["rows"]),
                "mean_score": _number(row["mean_score"]),
                "mean_actual": _number(row["mean"]),
            }
        )
    return out


def _with_lift(deciles: list[dict[str, Any]], overall: float | None) -> list[dict[str, Any]]:
    for d in deciles:
        mean = d["mean_actual"]
        d["lift"] = mean / overall if overall and mean is not None else None
    return deciles


def churn_metrics(
    t: ir.Table, /, *, score: str, actual: str, by: str | None = None
) -> dict[str, dict[str, Any]]:
    """Overall (``"all"``) and per group of ``by``: rows, positives, base_rate, mean_predicted,
    calibration_gap, brier (and its standard error), ece, auc (and auc_se), top_decile_lift,
    deciles. ``actual`` is 1 for a churned profile, 0 otherwise; ``score`` its probability."""
    ranked = _ranked(_base(t, score, actual, by))
    top = ranked["_pos"] < (ranked["_n"] * 0.1).ceil()
    err2 = (ranked["_p"] - ranked["_y"]) ** 2
    agg = ranked.group_by("_g").aggregate(
        rows=ranked.count(),
        positives=ranked["_y"].sum(),
        mean_p=ranked["_p"].mean(),
        brier=err2.mean(),
        brier_sq=(err2 * err2).mean(),
        rank_sum=ranked["_r"].sum(where=ranked["_y"] == 1),
        top=ranked["_ytie"].mean(where=top),
    )
    bins = (ranked["_p"] * _BINS).floor().clip(0, _BINS - 1)
    binned = ranked.mutate(_b=bins)
    cal = binned.group_by(["_g", "_b"]).aggregate(
        n=binned.count(), p=binned["_p"].mean(), y=binned["_y"].mean()
    )
    ece = cal.group_by("_g").aggregate(
        ece=(cal["n"] * (cal["p"] - cal["y"]).abs()).sum() / cal["n"].sum()
    )
    eces = {r["_g"]: r["ece"] for r in ece.to_pyarrow().to_pylist()}
    deciles = _deciles(ranked)
    out: dict[str, dict[str, Any]] = {}
    for row in agg.order_by("_g").to_pyarrow().to_pylist():
        n, n1 = int(row["rows"]), int(row["positives"] or 0)
        n0 = n - n1
        rate = n1 / n if n else None
        auc = None
        if n1 and n0:
            auc = (float(row["rank_sum"]) - n1 * (n1 + 1) / 2) / (n1 * n0)
        brier = _number(row["brier"])
        brier_var = (_number(row["brier_sq"]) or 0.0) - (brier or 0.0) ** 2
        out[row["_g"]] = {
            "rows": n,
            "positives": n1,
            "base_rate": rate,
            "mean_predicted": _number(row["mean_p"]),
            "calibration_gap": (
                _number(row["mean_p"]) - rate
                if rate is not None and row["mean_p"] is not None
                else None
            ),
            "brier": brier,
            "brier_se": math.sqrt(max(brier_var, 0.0) / n) if n > 1 else None,
            "ece": _number(eces.get(row["_g"])),
            "auc": auc,
            "auc_se": auc_standard_error(auc, n1, n0),
            "top_decile_lift": (
                _number(row["top"]) / rate if rate and row["top"] is not None else None
            ),
            "deciles": _with_lift(deciles.get(row["_g"], []), rate),
        }
    return out


def ltv_metrics(
    t: ir.Table, /, *, score: str, actual: str, by: str | None = None
) -> dict[str, dict[str, Any]]:
    """Overall (``"all"``) and per group of ``by``: rows, mean_actual, mean_predicted, mae,
    total_pct_error (the summed
    predictions' error in percent of the realised total), top_decile_lift, deciles."""
    ranked = _ranked(_base(t, score, actual, by))
    top = ranked["_pos"] < (ranked["_n"] * 0.1).ceil()
    agg = ranked.group_by("_g").aggregate(
        rows=ranked.count(),
        total=ranked["_y"].sum(),
        predicted=ranked["_p"].sum(),
        mae=(ranked["_p"] - ranked["_y"]).abs().mean(),
        top=ranked["_ytie"].mean(where=top),
    )
    deciles = _deciles(ranked)
    out: dict[str, dict[str, Any]] = {}
    for row in agg.order_by("_g").to_pyarrow().to_pylist():
        n = int(row["rows"])
        total, predicted = _number(row["total"]) or 0.0, _number(row["predicted"]) or 0.0
        mean = total / n if n else None
        out[row["_g"]] = {
            "rows": n,
            "mean_actual": mean,
            "mean_predicted": predicted / n if n else None,
            "mae": _number(row["mae"]),
            "total_pct_error": 100.0 * (predicted - total) / total if total else None,
            "top_decile_lift": _number(row["top"]) / mean
            if mean and row["top"] is not None
            else None,
            "deciles": _with_lift(deciles.get(row["_g"], []), mean),
        }
    return out


def _interval(diff: float, se: float) -> tuple[float, float]:
    return diff - Z95 * se, diff + Z95 * se


def uplift(
    t: ir.Table, /, *, treated: str, churned: str, revenue: str, by: str | None = None
) -> dict[str, dict[str, Any]]:
    """Treated vs control, overall (``"all"``) and per group of ``by``: each arm's rows, churn
    rate and revenue per profile, and the uplift with a 95% interval: ``churn_reduction`` =
    the control's churn rate minus the treated's (positive: fewer churned where the traits were
    acted on), ``revenue_uplift`` = the treated's revenue per profile minus the control's.
    ``treated`` is a boolean column (null rows are left out)."""
    import ibis

    flag = t[treated]
    base = _groups(
        t,
        by,
        # As a number (PostgreSQL casts no boolean to bigint: a CASE), and never a negated
        # boolean: ibis 12's filter merge writes "NOT (x) IS NOT NULL", which DuckDB reads as
        # NOT (x IS NOT NULL) and which drops every row.
        _t=ibis.cases((flag.isnull(), ibis.null("int64")), (flag, 1), else_=0),
        _c=t[churned].cast("float64"),
        _v=t[revenue].cast("float64"),
    )
    base = base.filter(base["_t"].notnull() & base["_c"].notnull() & base["_v"].notnull())
    agg = base.group_by(["_g", "_t"]).aggregate(
        n=base.count(),
        churn=base["_c"].mean(),
        revenue=base["_v"].mean(),
        revenue_sq=(base["_v"] * base["_v"]).mean(),
    )
    cells: dict[str, dict[bool, dict[str, Any]]] = {}
    for row in agg.to_pyarrow().to_pylist():
        cells.setdefault(row["_g"], {})[row["_t"] == 1] = row
    out: dict[str, dict[str, Any]] = {}
    for g in sorted(cells):
        arms = cells[g]
        result: dict[str, Any] = {
            "treated_rows": int(arms[True]["n"]) if True in arms else 0,
            "control_rows": int(arms[False]["n"]) if False in arms else 0,
        }
        for arm, name in ((True, "treated"), (False, "control")):
            row = arms.get(arm)
            result[f"{name}_churn_rate"] = _number(row["churn"]) if row else None
            result[f"{name}_revenue"] = _number(row["revenue"]) if row else None
        if True in arms and False in arms and arms[True]["n"] > 1 and arms[False]["n"] > 1:
            tr, co = arms[True], arms[False]
            nt, nc = int(tr["n"]), int(co["n"])
            pt, pc = float(tr["churn"]), float(co["churn"])
            diff = pc - pt
            se = math.sqrt(pt * (1 - pt) / nt + pc * (1 - pc) / nc)
            result["churn_reduction"] = diff
            result["churn_reduction_ci"] = _interval(diff, se)
            vt = max(float(tr["revenue_sq"]) - float(tr["revenue"]) ** 2, 0.0) * nt / (nt - 1)
            vc = max(float(co["revenue_sq"]) - float(co["revenue"]) ** 2, 0.0) * nc / (nc - 1)
            rdiff = float(tr["revenue"]) - float(co["revenue"])
            result["revenue_uplift"] = rdiff
            result["revenue_uplift_ci"] = _interval(rdiff, math.sqrt(vt / nt + vc / nc))
        else:
            result["churn_reduction"] = result["revenue_uplift"] = None
            result["churn_reduction_ci"] = result["revenue_uplift_ci"] = None
        out[g] = result
    return out
