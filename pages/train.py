"""Train: churn or LTV models on the warehouse tables, judged out of time beside a reference."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

import app_state
from sqltraits_kit import charts
from sqltraits_kit.errors import SqlTraitsError
from sqltraits_kit.features import TableMapping
from sqltraits_kit.registry import Registry
from sqltraits_kit.training import ESTIMATORS, default_cutoff, save_result, train_model
from sqltraits_kit.warehouse import Warehouse

ESTIMATOR_LABELS = {
    "gbm": "gradient boosting (HistGradientBoosting)",
    "logistic": "logistic regression (baseline)",
    "poisson": "Poisson GLM (baseline)",
    "btyd": "BG/NBD + Gamma-Gamma (buy-till-you-die)",
}
MAPPING_FIELDS = {
    "profiles_table": ("Profiles table", None),
    "profile_id": ("Profile id", "profiles_table"),
    "profile_created_at": ("Profile created at", "profiles_table"),
    "orders_table": ("Orders table", None),
    "order_profile_id": ("Order profile id", "orders_table"),
    "order_timestamp": ("Order timestamp", "orders_table"),
    "order_revenue": ("Order revenue", "orders_table"),
    "tracks_table": ("Tracks table", None),
    "track_profile_id": ("Track profile id", "tracks_table"),
    "track_timestamp": ("Track timestamp", "tracks_table"),
    "track_event": ("Track event name", "tracks_table"),
    "pages_table": ("Pages table", None),
    "page_profile_id": ("Page profile id", "pages_table"),
    "page_timestamp": ("Page timestamp", "pages_table"),
}
OPTIONAL = ("profile_created_at", "tracks_table", "track_event", "pages_table")
NONE = "(none)"


@st.cache_data(ttl=300, show_spinner=False)
def latest_cutoff(url: str, _wh: Warehouse, mapping_json: str, horizon_days: int) -> str:
    mapping = TableMapping.from_dict(json.loads(mapping_json))
    return default_cutoff(_wh, mapping, horizon_days=horizon_days).isoformat()


@st.cache_data(ttl=300, show_spinner=False)
def columns_of(url: str, _wh: Warehouse, table: str) -> list[str]:
    return [name for name, _type in _wh.describe(table)]


def mapping_editor(wh: Warehouse) -> TableMapping:
    """Selectboxes for every mapped table and column, starting from the defaults."""
    defaults = TableMapping().to_dict()
    tables = wh.tables()
    chosen: dict[str, str | None] = {}
    left, right = st.columns(2)
    for i, (field, (label, table_field)) in enumerate(MAPPING_FIELDS.items()):
        with left if i % 2 == 0 else right:
            if table_field is None:
                options = tables
            else:
                table = chosen.get(table_field)
                if table is None:
                    continue  # no such table mapped: its columns are moot
                options = columns_of(wh.url, wh, table)
            if field in OPTIONAL:
                options = [NONE, *options]
            default = defaults[field] if defaults[field] in options else options[0]
            value = st.selectbox(
                label, options, index=options.index(default), key=f"train_map_{field}"
            )
            chosen[field] = None if value == NONE else value
    return TableMapping.from_dict(chosen)


def show_result(result) -> None:
    card = result.card
    st.subheader(f"{card.kind} model · {card.estimator}")
    st.caption(
        f"Trained on {card.training_rows:,} profiles at cutoff {card.cutoff}; tested out of time "
        f"on {card.test_rows:,} profiles at {card.test_cutoff} (horizon {card.horizon_days} days)"
        f" · {result.seconds:.1f} s"
    )
    table = charts.metrics_table(result.metrics)
    has_reference = any(k.startswith("reference_") for k in result.metrics)
    if not has_reference:
        table = table.drop(columns="reference")
    st.dataframe(table, hide_index=True, key="train_metrics")
    if has_reference:
        st.caption(
            "Reference: BG/NBD and Gamma-Gamma with the sample's true population parameters, "
            "fed each customer's order history — the best achievable from orders alone."
        )
    else:
        st.caption("No reference predictor: this warehouse has no `sample_truth` table.")
    if card.params:
        st.write("Fitted parameters (weeks):")
        st.json(card.params)
    figures = charts.evaluation_figures(card.kind, result.tables)
    names = list(figures)
    for start in range(0, len(names), 2):
        cols = st.columns(2)
        for col, name in zip(cols, names[start : start + 2], strict=False):
            with col:
                st.plotly_chart(figures[name], key=f"train_chart_{name}")
    for note in card.notes:
        st.caption(f"Note: {note}")


def versions_section(registry: Registry) -> None:
    st.subheader("Saved versions")
    cards = registry.list()
    if not cards:
        st.info(f"No saved models in `{registry.root}` yet.")
        return
    active = {name: registry.active(name) for name in {c.name for c in cards}}
    rows = []
    for c in cards:
        current = active[c.name]
        rows.append(
            {
                "model": c.ref,
                "active": current is not None and current.version == c.version,
                "kind": c.kind,
                "estimator": c.estimator,
                "cutoff": c.cutoff,
                "horizon": c.horizon_days,
                "auc": c.metrics.get("auc"),
                "gini": c.metrics.get("gini"),
                "training rows": c.training_rows,
                "created": c.created_at,
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="train_versions")
    refs = [c.ref for c in cards]
    by_ref = {c.ref: c for c in cards}

    left, right = st.columns(2)
    with left:
        ref = st.selectbox("Score with", refs, key="train_activate_ref")
        if st.button("Mark as active", key="train_activate"):
            card = by_ref[ref]
            registry.set_active(card.name, card.version)
            st.success(f"{card.ref} is now the active {card.name!r} model")
    with right:
        a = st.selectbox("Compare", refs, index=0, key="train_compare_a")
        b = st.selectbox("with", refs, index=min(1, len(refs) - 1), key="train_compare_b")
    ca, cb = by_ref[a], by_ref[b]
    keys = [k for k in dict.fromkeys([*ca.metrics, *cb.metrics]) if not k.endswith("_rows")]
    compare = pd.DataFrame(
        {
            "": ["estimator", "cutoff", "horizon", "features", "training rows", *keys],
            a: [ca.estimator, ca.cutoff, ca.horizon_days, len(ca.features), ca.training_rows]
            + [ca.metrics.get(k) for k in keys],
            b: [cb.estimator, cb.cutoff, cb.horizon_days, len(cb.features), cb.training_rows]
            + [cb.metrics.get(k) for k in keys],
        }
    ).astype({a: str, b: str})
    st.dataframe(compare, hide_index=True, key="train_compare")


st.title("Train")
st.caption(
    "Features are computed in the warehouse as of a cutoff; labels look at the horizon after it. "
    "Every model is tested on a later cutoff, never on a random split across time."
)

with app_state.user_errors():
    wh = app_state.warehouse()
    settings = app_state.settings()
    registry = Registry(settings.models_dir)

    kind = st.radio("Predict", ["churn", "ltv"], horizontal=True, key="train_kind")
    estimators = list(ESTIMATORS[kind])
    estimator = st.selectbox(
        "Estimator",
        estimators,
        format_func=lambda e: ESTIMATOR_LABELS.get(e, e),
        key=f"train_estimator_{kind}",
    )
    left, right = st.columns(2)
    with left:
        horizon = int(st.number_input("Horizon (days)", 7, 730, 90, step=1, key="train_horizon"))
        churn_on = "orders"
        if kind == "churn":
            churn_on = st.radio(
                "Churned means no…",
                ["orders", "activity"],
                format_func=lambda v: "order" if v == "orders" else "activity at all",
                horizontal=True,
                key="train_churn_on",
            )
    with st.expander("Table mapping", expanded=False):
        mapping = mapping_editor(wh)
    with right:
        latest = latest_cutoff(wh.url, wh, json.dumps(mapping.to_dict()), horizon)
        auto = st.toggle("Latest possible cutoff", value=True, key="train_auto_cutoff")
        cutoff = latest
        if auto:
            st.caption(f"Cutoff {latest}: the latest whose out-of-time test labels are complete.")
        else:
            cutoff = st.date_input(
                "Training cutoff", value=pd.Timestamp(latest).date(), key="train_cutoff"
            ).isoformat()
        name = st.text_input("Save as", value=kind, key=f"train_name_{kind}")

    if st.button("Train", type="primary", key="train_run"):
        with st.status("Training…", expanded=True) as status:
            bar = st.progress(0.0)

            def progress(message: str, fraction: float) -> None:
                bar.progress(min(max(fraction, 0.0), 1.0), text=message)

            try:
                st.session_state["train_result"] = train_model(
                    wh,
                    kind=kind,
                    mapping=mapping,
                    cutoff=cutoff,
                    horizon_days=horizon,
                    estimator=estimator,
                    name=name.strip() or kind,
                    churn_on=churn_on,
                    progress=progress,
                )
                status.update(label="Trained", state="complete", expanded=False)
            except SqlTraitsError:
                status.update(label="Training failed", state="error")
                raise

    result = st.session_state.get("train_result")
    if result is not None:
        show_result(result)
        if result.saved:
            st.success(f"Saved as {result.card.ref} in `{registry.root}`")
        elif st.button("Save to the registry", key="train_save"):
            result = save_result(result, registry)
            st.session_state["train_result"] = result
            st.success(f"Saved as {result.card.ref} in `{registry.root}`")
        with st.expander("Model card"):
            st.json(result.card.to_dict())

    st.divider()
    versions_section(registry)
