"""Plotly figures of an outcome report: a live metric over time beside the card's figure, and
the treated-vs-control uplift per tier with its 95% intervals. Built from the report's few
numbers, never from rows; the Monitor page shows them, a notebook calls ``fig.show()``.

    metric_figure(report, "auc")          # live AUC per run (x: scores' as-of date), card dashed
    uplift_figure(run, "churn_reduction")  # per tier, with error bars
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import plotly.graph_objects as go

if TYPE_CHECKING:
    from sqltraits_kit.workflows.outcomes import OutcomeReport, RunOutcome

__all__ = ["UPLIFT_LABELS", "metric_figure", "uplift_figure"]

_LAYOUT = {"margin": {"l": 40, "r": 20, "t": 50, "b": 40}}
_ALERT = "#e74c3c"
UPLIFT_LABELS = {
    "churn_reduction": "Churn rate reduction (control minus treated)",
    "revenue_uplift": "Revenue per profile (treated minus control)",
}


def metric_figure(report: OutcomeReport, metric: str, /) -> go.Figure:
    """One line of live values per model version over the scores' as-of dates, the card's
    figure as a dashed line of the same colour, flagged runs marked in red."""
    fig = go.Figure()
    rows = [r for r in report.over_time() if r["metric"] == metric and r["as_of"] is not None]
    for model in sorted({r["model"] for r in rows}):
        mine = sorted((r for r in rows if r["model"] == model), key=lambda r: r["as_of"])
        xs = [r["as_of"] for r in mine]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=[r["live"] for r in mine],
                mode="lines+markers",
                name=f"{model} live",
                marker={"color": [_ALERT if r["flagged"] else None for r in mine]},
            )
        )
        if any(r["card"] is not None for r in mine):
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=[r["card"] for r in mine],
                    mode="lines",
                    line={"dash": "dash"},
                    name=f"{model} card (out of time)",
                )
            )
    fig.update_layout(
        title=f"{metric}: live vs the model card", xaxis_title="scores as of", **_LAYOUT
    )
    return fig


def uplift_figure(run: RunOutcome, measure: str = "churn_reduction", /) -> go.Figure:
    """The uplift per tier (overall first) with its 95% interval as error bars."""
    cells = [(tier, u) for tier, u in (run.uplift or {}).items() if u.get(measure) is not None]
    cells.sort(key=lambda item: item[0] != "all")
    values = [u[measure] for _, u in cells]
    ci = [u[f"{measure}_ci"] for _, u in cells]
    fig = go.Figure(
        go.Bar(
            x=[tier for tier, _ in cells],
            y=values,
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [hi - v for v, (_lo, hi) in zip(values, ci, strict=True)],
                "arrayminus": [v - lo for v, (lo, _hi) in zip(values, ci, strict=True)],
            },
        )
    )
    fig.add_hline(y=0, line={"color": "#7f8c8d"})
    fig.update_layout(title=UPLIFT_LABELS.get(measure, measure), **_LAYOUT)
    return fig
