"""Plotly figures for model evaluation, shared by the app's pages and notebooks (no UI code here).

Each builder takes the small tables a :class:`~sqltraits_kit.modelling.training.TrainResult` carries
(``result.tables``) and draws the model beside the reference predictor when there is one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

__all__ = [
    "calibration_figure",
    "candidates_table",
    "decile_figure",
    "evaluation_figures",
    "gain_figure",
    "importance_figure",
    "metrics_table",
    "predicted_vs_actual_figure",
    "roc_figure",
]

_MODEL = "model"
_REFERENCE = "reference (true parameters)"
_BASELINE = "best baseline"
_DIAGONAL = {"dash": "dot", "color": "grey"}


def _figure(title: str, x: str, y: str) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.update_layout(
        title=title,
        xaxis_title=x,
        yaxis_title=y,
        template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
        margin={"l": 50, "r": 20, "t": 50, "b": 50},
    )
    return fig


def roc_figure(
    roc: pd.DataFrame,
    reference: pd.DataFrame | None = None,
    baseline: pd.DataFrame | None = None,
    *,
    baseline_name: str = _BASELINE,
) -> go.Figure:
    fig = _figure("ROC curve (out of time)", "false positive rate", "true positive rate")
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=_DIAGONAL, name="chance")
    fig.add_scatter(x=roc["fpr"], y=roc["tpr"], mode="lines", name=_MODEL)
    if reference is not None:
        fig.add_scatter(x=reference["fpr"], y=reference["tpr"], mode="lines", name=_REFERENCE)
    if baseline is not None:
        fig.add_scatter(
            x=baseline["fpr"],
            y=baseline["tpr"],
            mode="lines",
            line={"dash": "dash"},
            name=f"baseline: {baseline_name}",
        )
    return fig


def calibration_figure(
    reliability: pd.DataFrame, reference: pd.DataFrame | None = None
) -> go.Figure:
    fig = _figure("Calibration", "mean predicted churn probability", "observed churn rate")
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=_DIAGONAL, name="perfect")
    for table, label in ((reliability, _MODEL), (reference, _REFERENCE)):
        if table is None:
            continue
        fig.add_scatter(
            x=table["mean_predicted"],
            y=table["observed_rate"],
            mode="lines+markers",
            name=label,
            customdata=table["rows"],
            hovertemplate="predicted %{x:.2f}<br>observed %{y:.2f}<br>%{customdata} rows",
        )
    return fig


def gain_figure(
    gain: pd.DataFrame,
    reference: pd.DataFrame | None = None,
    *,
    what: str = "churners",
    baseline: pd.DataFrame | None = None,
    baseline_name: str = _BASELINE,
) -> go.Figure:
    fig = _figure(
        f"Cumulative gain: share of {what} in the top x% by score",
        "share of profiles targeted",
        f"share of {what} captured",
    )
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=_DIAGONAL, name="random")
    curves = ((gain, _MODEL), (reference, _REFERENCE), (baseline, f"baseline: {baseline_name}"))
    for table, label in curves:
        if table is None:
            continue
        fig.add_scatter(
            x=table["fraction_targeted"],
            y=table["fraction_captured"],
            mode="lines",
            name=label,
            customdata=table["lift"],
            hovertemplate="top %{x:.0%}: %{y:.0%} captured, lift %{customdata:.2f}",
        )
    return fig


def importance_figure(importance: pd.DataFrame, *, top: int = 20) -> go.Figure:
    data = importance.head(top).iloc[::-1]
    fig = _figure("Permutation importance (drop in the score)", "importance", "")
    fig.add_bar(
        x=data["importance"],
        y=data["feature"],
        orientation="h",
        error_x={"type": "data", "array": data["std"]},
        name="importance",
    )
    fig.update_layout(height=max(300, 24 * len(data) + 120), showlegend=False)
    return fig


def decile_figure(deciles: pd.DataFrame, reference: pd.DataFrame | None = None) -> go.Figure:
    fig = _figure(
        "Mean LTV by predicted decile (1 = highest predicted)", "decile", "mean horizon revenue"
    )
    fig.add_bar(x=deciles["decile"], y=deciles["mean_actual"], name="actual")
    fig.add_scatter(
        x=deciles["decile"], y=deciles["mean_predicted"], mode="lines+markers", name="predicted"
    )
    if reference is not None:
        fig.add_scatter(
            x=reference["decile"],
            y=reference["mean_actual"],
            mode="lines+markers",
            line={"dash": "dash"},
            name=f"actual, deciles of the {_REFERENCE}",
        )
    return fig


def predicted_vs_actual_figure(scatter: pd.DataFrame) -> go.Figure:
    fig = _figure(
        "Predicted vs actual horizon revenue (sample of test profiles)", "predicted", "actual"
    )
    top = float(max(scatter["predicted"].max(), scatter["actual"].max(), 1.0))
    fig.add_scatter(x=[0, top], y=[0, top], mode="lines", line=_DIAGONAL, name="perfect")
    fig.add_scatter(
        x=scatter["predicted"],
        y=scatter["actual"],
        mode="markers",
        marker={"size": 4, "opacity": 0.4},
        name="profiles",
    )
    return fig


_LABELS = {
    "auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "brier": "Brier score (lower is better)",
    "top_decile_lift": "top-decile lift",
    "base_rate": "churn rate",
    "mae": "MAE (lower is better)",
    "spearman": "Spearman",
    "gini": "normalised Gini",
    "total_pct_error": "total % error",
    "mean_actual": "mean actual LTV",
    "mean_predicted": "mean predicted LTV",
}


def metrics_table(
    metrics: Mapping[str, Any], comparison: Sequence[Mapping[str, Any]] | None = None
) -> pd.DataFrame:
    """Metric | model | best baseline | which baseline | beats it | reference, in reading order.

    The baseline columns come from the card's ``comparison`` (empty without one); the reference
    column is empty when unknown.
    """
    import pandas as pd

    compared = {row["metric"]: row for row in comparison or []}
    rows = []
    for key, label in _LABELS.items():
        if key not in metrics:
            continue
        ref = metrics.get(f"reference_{key}")
        if key in ("base_rate", "mean_actual"):
            ref = metrics[key]  # the same test data for both
        row = compared.get(key, {})
        rows.append(
            {
                "metric": label,
                "model": metrics[key],
                "best baseline": row.get("baseline"),
                "baseline": row.get("best_baseline"),
                "beats it": row.get("beats"),
                "reference": ref,
            }
        )
    columns = ["metric", "model", "best baseline", "baseline", "beats it", "reference"]
    return pd.DataFrame(rows, columns=columns)


def candidates_table(selection: Mapping[str, Any]) -> pd.DataFrame:
    """Every candidate's validation and test figure on the metric the champion was chosen by."""
    import pandas as pd

    metric = selection["selected_by"]
    rows = [
        {
            "candidate": name,
            "champion": name == selection["champion"],
            f"validation {metric}": figures.get("validation", {}).get(metric),
            f"test {metric}": figures.get("test", {}).get(metric),
            "blend member": name in selection.get("blend_members", []),
        }
        for name, figures in selection["candidates"].items()
    ]
    return pd.DataFrame(rows)


def _name(tables: Mapping[str, pd.DataFrame], key: str) -> str:
    table = tables.get(key)
    return str(table.attrs.get("name", _BASELINE)) if table is not None else _BASELINE


def evaluation_figures(kind: str, tables: Mapping[str, pd.DataFrame]) -> dict[str, go.Figure]:
    """Every chart that fits a result of ``kind`` (churn | ltv | btyd), by title."""
    figures: dict[str, go.Figure] = {}
    if kind in ("churn", "btyd") and "roc" in tables:
        figures["ROC"] = roc_figure(
            tables["roc"],
            tables.get("reference_roc"),
            tables.get("baseline_roc"),
            baseline_name=_name(tables, "baseline_roc"),
        )
        figures["Calibration"] = calibration_figure(
            tables["reliability"], tables.get("reference_reliability")
        )
        figures["Cumulative gain"] = gain_figure(
            tables["gain"],
            tables.get("reference_gain"),
            baseline=tables.get("baseline_gain"),
            baseline_name=_name(tables, "baseline_gain"),
        )
    prefix = "ltv_" if kind == "btyd" else ""
    if kind in ("ltv", "btyd") and f"{prefix}deciles" in tables:
        figures["Deciles"] = decile_figure(
            tables[f"{prefix}deciles"], tables.get(f"reference_{prefix}deciles")
        )
        figures["Revenue gain"] = gain_figure(
            tables[f"{prefix}gain"],
            tables.get(f"reference_{prefix}gain"),
            what="revenue",
            baseline=tables.get(f"baseline_{prefix}gain"),
            baseline_name=_name(tables, f"baseline_{prefix}gain"),
        )
        scatter = tables.get(f"{prefix}scatter")
        if scatter is not None:
            figures["Predicted vs actual"] = predicted_vs_actual_figure(scatter)
    if "importance" in tables:
        figures["Feature importance"] = importance_figure(tables["importance"])
    return figures
