"""Preview: the traits a publish would send — checks, distributions, drift, payloads, export, SQL.

Every number is computed in the warehouse by :mod:`sqltraits_kit.workflows.preview` (one cached
call per panel, :mod:`app_views.preview`); the browser gets bins, counts and a sample of profiles,
never the table. Results are cached per warehouse, trait set and data version (current run, row
count, last publish), so moving the threshold or changing the SQL dialect costs no warehouse
query.

Session state: ``drift_threshold`` (the threshold in use, which the Publish step respects) and
``preview_trait_set`` (the trait set it was chosen for); the other keys start with ``preview_``.
"""

from __future__ import annotations

import time

import streamlit as st

import app_state
from app_views import preview as view
from app_views import preview_panels as panels

st.title("Preview")
st.caption(
    "What a publish would send: Segment's contract checks, each trait's distribution, drift "
    "against what Segment already holds, sample payloads, a CSV and the equivalent SQL Trait. "
    "Computed in the warehouse: only bins, counts and a sample reach the browser."
)

wh = app_state.warehouse()

with app_state.user_errors():
    ts = view.edit(wh, view.pick_trait_set(wh))
    view.missing_columns_state(wh, ts)
    threshold, bins, sample_size = view.controls(ts)
    key = view.cache_key(wh, ts)
    started = time.perf_counter()
    alerts = st.container()  # drift warnings land here, above the panels, once computed
    m_rows, m_traits, m_contract, m_psi = st.columns(4)

    st.subheader("Segment's SQL-trait contract")
    with st.spinner("Checking Segment's rules in the warehouse…"):
        contract = view.cached_contract(*key)
    panels.contract_panel(contract, m_contract)

    st.subheader("Distributions")
    st.caption(
        "Binned in the warehouse: each chart carries its bins, not the rows. Quantiles are exact "
        "(linear interpolation); NaN and ±inf are counted apart."
    )
    with st.spinner("Binning every trait in the warehouse…"):
        dists = view.cached_distributions(*key, bins)
    m_rows.metric("Profiles", f"{dists.rows:,}")
    m_traits.metric("Traits", len(dists.traits))
    panels.distributions_panel(dists)

    st.subheader("Drift against the baseline")
    with st.spinner("Comparing with the baseline in the warehouse…"):
        check = view.cached_drift(*key, view.publish_sync_key(ts)).with_threshold(threshold)
    panels.drift_panel(check, threshold, alerts, m_psi)

    st.subheader("Sample payloads")
    sample = view.cached_sample(*key, sample_size)
    panels.sample_panel(sample, ts)

    st.subheader("Export")
    panels.export_panel(key, dists.rows, ts)

    st.subheader("As a Segment SQL Trait")
    panels.sql_panel(wh, key, ts)

    seconds = {
        "checks": contract.seconds,
        "distributions": dists.seconds,
        "drift": check.seconds,
        "sample": sample.seconds,
    }
    panels.timings_caption(seconds, started)
