"""Train: churn or LTV models on the warehouse tables, judged out of time beside a reference.

The panels are :mod:`app_views.train`'s: what the trait sets need, the table mapping (saved in
the project, else guessed, then confirmed), the result and the saved versions.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

import app_state
from app_views import train as view
from app_views import train_results as results
from sqltraits_kit.errors import SqlTraitsError
from sqltraits_kit.modelling.registry import Registry
from sqltraits_kit.modelling.training import ESTIMATORS, train_model
from sqltraits_kit.workflows.defaults import models_by_warehouse
from sqltraits_kit.workflows.training_setup import ESTIMATOR_LABELS

st.title("Train")
st.caption(
    "Features are computed in the warehouse as of a cutoff; labels look at the horizon after it. "
    "Every model is tested on a later cutoff, never on a random split across time."
)

with app_state.user_errors():
    wh = app_state.warehouse()
    settings = app_state.settings()
    registry = Registry(settings.models_dir, signing_key=settings.model_signing_key)
    if not wh.tables():
        st.info("This warehouse has no tables yet: connect to another one, or load the demo.")
        app_state.page_link("pages/data.py", "Choose the warehouse", ":material/database:")
        st.stop()
    here, _elsewhere = models_by_warehouse(registry.list(), wh)
    view.guided_path(wh, here)
    mapping = view.mapping_panel(wh)

    kind = st.radio(
        "Predict", ["churn", "ltv"], horizontal=True, key="train_kind", persist_state="session"
    )
    estimator = st.selectbox(
        "Estimator",
        list(ESTIMATORS[kind]),
        format_func=lambda e: ESTIMATOR_LABELS.get(e, e),
        key=f"train_estimator_{kind}",
        persist_state="session",
    )
    left, right = st.columns(2)
    with left:
        horizon = int(
            st.number_input(
                "Horizon (days)",
                7,
                730,
                app_state.choices(wh).horizon_days or 90,
                step=1,
                key="train_horizon",
                persist_state="session",
            )
        )
        windows = st.multiselect(
            "Feature windows (days)",
            [7, 14, 30, 60, 90, 180],
            default=[7, 30, 90],
            key="train_windows",
            persist_state="session",
            help="Orders and spend are counted over each window before the cutoff. A log "
            "younger than the longest window at the cutoff needs shorter ones.",
        )
        churn_on = "orders"
        if kind == "churn":
            churn_on = st.radio(
                "Churned means no…",
                ["orders", "activity"],
                format_func=lambda v: "order" if v == "orders" else "activity at all",
                horizontal=True,
                key="train_churn_on",
                persist_state="session",
            )
    feature_spec = view.feature_spec_panel()
    with right:
        cutoff = None
        if mapping is None:
            st.caption("The cutoff appears once the table mapping is complete and valid.")
        else:
            latest = view.latest_cutoff(wh, mapping, horizon)
            auto = st.toggle(
                "Latest possible cutoff",
                value=True,
                key="train_auto_cutoff",
                persist_state="session",
            )
            cutoff = latest
            if auto:
                st.caption(f"Cutoff {latest}: the latest whose out-of-time labels are complete.")
            else:
                cutoff = st.date_input(
                    "Training cutoff",
                    value=pd.Timestamp(latest).date(),
                    key="train_cutoff",
                    persist_state="session",
                ).isoformat()
        # The BG/NBD pair gets its own name: trait sets score it beside the churn or LTV model
        # ("also = ['btyd']"), and saved as "churn" it would become that model's next version.
        name_key = f"train_name_{kind}_{estimator}"
        # The guided path sets the name in the session: no default beside it (a warning)
        default = (
            {}
            if name_key in st.session_state
            else {"value": "btyd" if estimator == "btyd" else kind}
        )
        name = st.text_input(
            "Save as",
            **default,
            key=name_key,
            persist_state="session",
            help="The registry name: a new version of it is saved. Trait sets refer to models "
            "by this name (their [model] section).",
        )

    if st.button(
        "Train",
        type="primary",
        disabled=mapping is None or not windows,
        key="train_run",
        icon=":material/model_training:",
    ):
        with st.status("Training…", expanded=True) as status:
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
                    windows=windows,
                    feature_spec=feature_spec,
                    progress=app_state.progress_bar(),
                )
                st.session_state["train_result_kind"] = kind
                status.update(label="Trained", state="complete", expanded=False)
            except SqlTraitsError:
                status.update(label="Training failed", state="error")
                raise

    results.flash(("error",))
    results.last_result(registry, kind)

    st.divider()
    results.flash(("success",))
    results.versions_section(registry, wh)
