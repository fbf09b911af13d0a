"""Plotly figures for trait distributions and drift, built from bins only.

Every builder takes the small objects of :mod:`sqltraits_kit.traits.distributions` and
:mod:`sqltraits_kit.traits.drift` (never rows), so a figure stays a few KB whatever the table size
(1M raw points in a plotly histogram are ~15 MB of figure data). The Preview page passes
them to ``st.plotly_chart``; notebooks call ``fig.show()``.

    histogram_figure(summaries["churn_probability"])       # bars + p5/p50/p95 markers
    histogram_figure(summaries["predicted_ltv"], log_scale=True)  # a skewed trait's tail
    tier_figure(tier_sizes(table, "churn_risk_tier", labels=[...]))
    null_rate_figure(summaries)
    psi_figure(report)                                      # PSI per trait vs the threshold
    psi_bins_figure(report.psi["churn_probability"])        # baseline vs current shares
    transition_figure(report.transitions["churn_risk_tier"])
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import plotly.graph_objects as go

from sqltraits_kit import formatting as fmt
from sqltraits_kit.traits.distributions import TraitSummary

if TYPE_CHECKING:
    import pandas as pd

    from sqltraits_kit.traits.drift import DriftReport, TraitPSI, TransitionMatrix

__all__ = [
    "histogram_figure",
    "null_rate_figure",
    "psi_bins_figure",
    "psi_figure",
    "tier_figure",
    "transition_figure",
]

_BASE = "#7f8c8d"
_CURRENT = "#2e86de"
_ALERT = "#e74c3c"
_LAYOUT = {"margin": {"l": 40, "r": 20, "t": 50, "b": 40}, "bargap": 0.05}


def _layout(fig: go.Figure, title: str, **extra: object) -> go.Figure:
    fig.update_layout(title=title, **_LAYOUT, **extra)
    return fig


def histogram_figure(
    summary: TraitSummary,
    /,
    *,
    title: str | None = None,
    quantiles: Iterable[str] = ("p5", "p50", "p95"),
    log_scale: bool = False,
) -> go.Figure:
    """Bars of a trait's histogram; numeric traits get dotted lines at the given quantiles.

    ``log_scale``: rows on a log axis, so that the tail of a skewed trait (LTV: most profiles
    near zero, a few large) shows beside its tallest bar.
    """
    title = title or (
        f"{summary.name}: {fmt.count(summary.rows)} rows, {fmt.percent(summary.null_rate)} null"
    )
    scale = {"yaxis_type": "log"} if log_scale else {}
    fig = go.Figure()
    hist = summary.histogram
    if hist is None:
        fig.add_annotation(
            text="no values to plot", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper"
        )
        return _layout(fig, title)
    if hist.kind == "numeric":
        pairs = list(itertools.pairwise(hist.edges))
        centers = [(a + b) / 2 for a, b in pairs]
        widths = [b - a if b > a else 1.0 for a, b in pairs]
        ranges = [f"[{fmt.figure(a)}, {fmt.figure(b)})" for a, b in pairs]
        fig.add_bar(
            x=centers,
            y=list(hist.counts),
            width=widths,
            customdata=ranges,
            hovertemplate="%{customdata}<br>%{y:,} rows<extra></extra>",
            marker_color=_CURRENT,
            name=summary.name,
        )
        # Each label on a line of its own: p5 and p50 sit close together on a skewed trait.
        for row, name in enumerate(quantiles):
            value = summary.quantiles.get(name)
            if value is not None:
                fig.add_vline(x=value, line_dash="dot", line_color=_BASE)
                fig.add_annotation(
                    x=value,
                    y=1.0 - 0.08 * row,
                    xref="x",
                    yref="paper",
                    text=f"{name} {fmt.figure(value)}",
                    showarrow=False,
                    xanchor="left",
                    font={"size": 11},
                    bgcolor="rgba(255,255,255,0.8)",
                )
        return _layout(fig, title, xaxis_title=summary.name, yaxis_title="rows", **scale)
    fig.add_bar(
        x=list(hist.labels),
        y=list(hist.counts),
        marker_color=_CURRENT,
        hovertemplate="%{x}<br>%{y:,} rows<extra></extra>",
        name=summary.name,
    )
    return _layout(
        fig, title, xaxis_title=summary.name, yaxis_title="rows", xaxis_type="category", **scale
    )


def tier_figure(sizes: pd.DataFrame, /, *, title: str = "Tier sizes") -> go.Figure:
    """Bars of :func:`sqltraits_kit.traits.distributions.tier_sizes` (tier, count, share)."""
    fig = go.Figure()
    fig.add_bar(
        x=[str(t) for t in sizes["tier"]],
        y=[int(n) for n in sizes["count"]],
        text=[fmt.percent(s) for s in sizes["share"]],
        textposition="outside",
        marker_color=_CURRENT,
        hovertemplate="%{x}<br>%{y:,} rows (%{text})<extra></extra>",
    )
    return _layout(fig, title, yaxis_title="rows", xaxis_type="category")


def null_rate_figure(
    summaries: Mapping[str, TraitSummary] | Iterable[TraitSummary],
    /,
    *,
    title: str = "Null rate per trait",
) -> go.Figure:
    """Horizontal bars: the share of null values of each trait, each with its value (a rate
    near zero is a bar too thin to see)."""
    items = list(summaries.values() if isinstance(summaries, Mapping) else summaries)
    fig = go.Figure()
    fig.add_bar(
        y=[s.name for s in items],
        x=[s.null_rate for s in items],
        orientation="h",
        text=[fmt.percent(s.null_rate, digits=2) for s in items],
        textposition="outside",
        cliponaxis=False,
        marker_color=[_ALERT if s.null_rate > 0 else _CURRENT for s in items],
        marker_line={"color": _BASE, "width": 1},  # a zero-width bar still shows as a line
        hovertemplate="%{y}: %{text} null<extra></extra>",
    )
    return _layout(fig, title, xaxis_tickformat=".0%", xaxis_range=[0, 1])


def psi_figure(report: DriftReport, /, *, title: str = "Population stability (PSI)") -> go.Figure:
    """PSI per numeric trait, with the report's threshold as a dashed line.

    Each bar carries its value (a PSI near zero is a bar too thin to see; its outline still
    shows), and the threshold's label sits in the right margin, where no bar can be.
    """
    items = [(t, p.psi) for t, p in report.psi.items() if p.psi is not None]
    fig = go.Figure()
    fig.add_bar(
        x=[t for t, _ in items],
        y=[v for _, v in items],
        text=[fmt.figure(v) for _, v in items],
        textposition="outside",
        cliponaxis=False,
        marker_color=[_ALERT if v > report.threshold else _CURRENT for _, v in items],
        marker_line={"color": _BASE, "width": 1},
        hovertemplate="%{x}: PSI %{text}<extra></extra>",
    )
    fig.add_hline(y=report.threshold, line_dash="dash", line_color=_ALERT)
    fig.add_annotation(
        x=1.0,
        xref="paper",
        xanchor="left",
        y=report.threshold,
        yref="y",
        text=f"threshold<br>{fmt.figure(report.threshold)}",
        showarrow=False,
        align="left",
        font={"color": _ALERT, "size": 11},
    )
    top = max([report.threshold, *(v for _, v in items)]) * 1.3
    fig = _layout(fig, title, yaxis_title="PSI", xaxis_type="category", yaxis_range=[0, top])
    fig.update_layout(margin={**_LAYOUT["margin"], "r": 80})  # room for the threshold's label
    return fig


def psi_bins_figure(psi: TraitPSI, /, *, title: str | None = None) -> go.Figure:
    """Baseline vs current share per PSI bin of one trait."""
    value = fmt.figure(psi.psi)
    title = title or f"{psi.trait}: PSI {value}"
    labels = [b.label for b in psi.bins]
    fig = go.Figure()
    fig.add_bar(
        x=labels, y=[b.baseline_share for b in psi.bins], name="baseline", marker_color=_BASE
    )
    fig.add_bar(
        x=labels, y=[b.current_share for b in psi.bins], name="current", marker_color=_CURRENT
    )
    return _layout(
        fig,
        title,
        barmode="group",
        yaxis_tickformat=".0%",
        xaxis_type="category",
        yaxis_title="share",
    )


def transition_figure(matrix: TransitionMatrix, /, *, title: str | None = None) -> go.Figure:
    """Heatmap of profile counts from baseline value (rows) to current value (columns)."""
    title = title or f"{matrix.trait}: {fmt.count(matrix.changed)} profiles changed"
    fig = go.Figure(
        go.Heatmap(
            z=[list(r) for r in matrix.counts],
            x=list(matrix.labels_to),
            y=list(matrix.labels_from),
            colorscale="Blues",
            texttemplate="%{z:,}",
            hovertemplate="%{y} → %{x}: %{z:,}<extra></extra>",
        )
    )
    return _layout(
        fig,
        title,
        xaxis_title="current",
        yaxis_title="baseline",
        xaxis_type="category",
        yaxis_type="category",
        yaxis_autorange="reversed",
    )
