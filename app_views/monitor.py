"""The Monitor page's panels: the outcome report of a trait set's published runs, the live
figures beside the model cards over time, and the treated-vs-control uplift per tier. The work
is :mod:`sqltraits_kit.workflows.outcomes`'s; these functions only show what it returned."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from sqltraits_kit import formatting as fmt
from sqltraits_kit.workflows.outcome_charts import UPLIFT_LABELS, metric_figure, uplift_figure
from sqltraits_kit.workflows.outcomes import OutcomeReport, RunOutcome

METRIC_LABELS = {
    "auc": "AUC (churn)",
    "brier": "Brier score (churn)",
    "calibration_gap": "Mean predicted minus observed (churn)",
    "top_decile_lift": "Top-decile lift (churn)",
    "mae": "MAE (LTV)",
    "total_pct_error": "Total error, % (LTV)",
}


def _date(value: Any) -> str:
    return fmt.instant(value.date()) if value is not None else fmt.DASH


def show_summary(report: OutcomeReport) -> None:
    """Counts, and what is flagged (live worse than its card by more than the margin)."""
    summary = report.to_dict()
    left, middle, right = st.columns(3)
    left.metric("Runs evaluated", summary["evaluated"])
    middle.metric("Waiting for their horizon", summary["pending"])
    right.metric("Flagged", len(report.flagged))
    if report.flagged:
        st.error("Live quality below the model card: " + "; ".join(report.flagged[:5]))
    elif summary["evaluated"]:
        st.success("Every live figure is within its margin of the model card.")
    margins = ", ".join(f"{k} {fmt.figure(v)}" for k, v in report.margins.items())
    st.caption(f"Margins: {margins} (see docs/OUTCOMES.md).")


def runs_frame(report: OutcomeReport) -> pd.DataFrame:
    rows = []
    for run in report.runs:
        base = {
            "run": run.run_id,
            "scores as of": _date(run.as_of),
            "status": run.status,
            "source": run.source,
        }
        if not run.models:
            rows.append({**base, "note": run.reason})
        for m in run.models:
            row = {**base, "model": m.model, "kind": m.kind, "profiles": m.live.get("rows")}
            for c in m.comparisons:
                row[c.metric] = c.live
                row[f"{c.metric} (card)"] = c.card
            row["flagged"] = ", ".join(m.flagged)
            row["note"] = m.reason
            rows.append(row)
    return pd.DataFrame(rows)


def show_runs(report: OutcomeReport) -> None:
    st.dataframe(runs_frame(report), hide_index=True, key="monitor_runs")


def show_over_time(report: OutcomeReport) -> None:
    metrics = [m for m in METRIC_LABELS if any(r["metric"] == m for r in report.over_time())]
    if not metrics:
        st.info("No run has reached its horizon yet: the charts fill in as outcomes arrive.")
        return
    metric = st.selectbox(
        "Metric",
        metrics,
        format_func=METRIC_LABELS.__getitem__,
        key="monitor_metric",
    )
    st.plotly_chart(metric_figure(report, metric), key="monitor_metric_chart")


def _uplift_frame(run: RunOutcome) -> pd.DataFrame:
    rows = []
    for tier, u in (run.uplift or {}).items():
        row = {"tier": tier, "treated": u["treated_rows"], "control": u["control_rows"]}
        for measure in UPLIFT_LABELS:
            row[measure] = u.get(measure)
            ci = u.get(f"{measure}_ci")
            row[f"{measure} 95% CI"] = (
                f"[{fmt.figure(ci[0])}, {fmt.figure(ci[1])}]" if ci else fmt.DASH
            )
        rows.append(row)
    return pd.DataFrame(rows)


def show_uplift(report: OutcomeReport) -> None:
    """Treated (not in the holdout) vs control, per tier, for one evaluated run."""
    runs = {r.run_id: r for r in report.runs if r.uplift}
    if not runs:
        st.info(
            "No holdout to compare with: declare `[holdout]` in the trait set (share, salt), "
            "exclude the flag from your Segment audiences, and the uplift shows here once the "
            "horizon has passed."
        )
        return
    run = runs[
        st.selectbox(
            "Run",
            list(runs),
            format_func=lambda r: f"{r} (scores as of {_date(runs[r].as_of)})",
            key="monitor_uplift_run",
        )
    ]
    st.dataframe(_uplift_frame(run), hide_index=True, key="monitor_uplift")
    left, right = st.columns(2)
    left.plotly_chart(uplift_figure(run, "churn_reduction"), key="monitor_uplift_churn")
    right.plotly_chart(uplift_figure(run, "revenue_uplift"), key="monitor_uplift_revenue")
