"""Monitor: did the published scores come true, and did acting on them work?

The report is :func:`sqltraits_kit.workflows.outcomes.outcomes`'s and the panels are
:mod:`app_views.monitor`'s; this page only lays them out.
"""

from __future__ import annotations

import streamlit as st

import app_state
from app_views import monitor as view
from sqltraits_kit.modelling.registry import Registry
from sqltraits_kit.workflows.outcomes import outcomes

st.title("Monitor")
st.caption(
    "For every published run whose model horizon has passed: the realised outcome of each "
    "profile Segment held (the label code training uses), live quality beside the model "
    "card's out-of-time figures, and with a holdout the uplift of what was done with the traits."
)

wh = app_state.warehouse()
settings = app_state.settings()
registry = Registry(settings.models_dir, signing_key=settings.model_signing_key)

sets = {ts.path.name: ts for ts in app_state.trait_sets(wh) if ts.path is not None}
if not sets:
    st.info("No trait set for this warehouse yet: save one from an output table on the Preview.")
    app_state.page_link("pages/preview.py", "Create a trait set", ":material/edit:")
    st.stop()
name = st.selectbox("Trait set", list(sets), key="monitor_traitset", persist_state="session")
limit = st.number_input(
    "Latest runs",
    min_value=1,
    max_value=200,
    value=20,
    key="monitor_limit",
    persist_state="session",
)

if st.session_state.get("monitor_for") != name:  # another trait set: the old report is stale
    st.session_state.pop("monitor_report", None)
if st.button(
    "Compute outcomes", type="primary", key="monitor_compute", icon=":material/monitoring:"
):
    with app_state.user_errors(), st.spinner("Computing the outcomes in the warehouse…"):
        trait_set = sets.get(name) or next(iter(sets.values()))
        st.session_state["monitor_report"] = outcomes(
            wh, trait_set, registry=registry, limit=int(limit)
        )
        st.session_state["monitor_for"] = name

report = st.session_state.get("monitor_report")
if report is None:
    st.caption("Compute the outcomes to see the published runs judged against what happened.")
    st.stop()

view.show_summary(report)
st.subheader("Published runs")
view.show_runs(report)
st.subheader("Live quality over time")
view.show_over_time(report)
st.subheader("Treated vs control")
view.show_uplift(report)
