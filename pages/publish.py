"""Publish: send the changed traits to Segment — settings, verdicts, dry run, publish, history.

The work is :mod:`sqltraits_kit.publishing.sync`'s and the panels are :mod:`app_views.publish`'s;
this page only lays them out. A publish runs in this script's thread (the session's warehouse
connection is not thread-safe) and reports progress through the sync's ``progress`` callback.
"""

from __future__ import annotations

import json

import streamlit as st

import app_state
from app_views import publish as view
from app_views import publish_results as results
from sqltraits_kit.publishing.sync import DryRunReport, dry_run
from sqltraits_kit.publishing.sync.client import destination_of

settings = app_state.settings()
wh = app_state.warehouse()
access = app_state.publish_access()  # publish, retry and the gate overrides need it

st.title("Publish")
st.caption(
    "Sends only the profiles whose traits changed since Segment last acknowledged them. "
    "A publish that is interrupted is resumed by the next one."
)
# Where a publish goes: one of the destinations the operator configured, never a typed URL.
target = view.destination_settings(settings, access)

st.subheader("What to publish")
picked = view.pick_source(wh, target)
if picked.sync_key is None:  # no usable source: the history is still worth seeing
    results.show_history(wh, target, picked)
    st.stop()

signature = json.dumps(
    {"source": str(picked.source), **picked.options}, sort_keys=True, default=str
)
if st.session_state.get("publish_signature") != signature:
    st.session_state["publish_signature"] = signature
    st.session_state.pop("publish_dry", None)

st.subheader("Checks and dry run")
if st.button("Check and dry run", key="publish_dry_button", icon=":material/rule:"):
    with app_state.user_errors(), st.spinner("Validating, diffing, building the payloads…"):
        st.session_state["publish_dry"] = dry_run(
            wh,
            picked.source,
            max_requests_per_second=view.limit(st.session_state["publish_rps"]),
            max_events_per_second=view.limit(st.session_state["publish_eps"]),
            destination=destination_of(target.destination),
            **picked.options,
        )
report: DryRunReport | None = st.session_state.get("publish_dry")
dry_slot = st.empty()  # a publish below replaces the report: its counts are then out of date
if report is None:
    dry_slot.caption("Run the checks to see the verdicts, the counts and the exact payloads.")
else:
    with dry_slot.container():
        results.show_dry_run(report)

st.subheader("Publish")
# The overrides are a publisher's call: for anyone else they stay unticked and disabled.
drift_box = st.checkbox(
    "Publish even if drift is over the threshold (or the result is empty)",
    disabled=not access,
    key="publish_allow_drift",
)
invalid_box = st.checkbox(
    "Publish even if validation fails (bad rows are then reported per row)",
    disabled=not access,
    key="publish_allow_invalid",
)
if st.button(
    f"Publish to {target.destination.label}",
    type="primary",
    disabled=not target.can_send,
    key="publish_button",
    icon=":material/send:",
):
    result = view.run_sync(
        wh,
        target,
        picked,
        only_failed=False,
        allow_drift=bool(access) and drift_box,
        allow_invalid=bool(access) and invalid_box,
    )
    if result is not None:
        st.session_state["publish_result"] = result.to_dict()
        st.session_state.pop("publish_dry", None)  # the published state moved on
        dry_slot.caption("Published: run the checks again to see what a next publish would send.")
if not access:
    st.caption(f"Publishing is disabled: {access.reason}.")
elif target.destination.write_key is None:
    st.caption("Publishing is disabled until a write key is configured.")

done = st.session_state.get("publish_result")
if done:
    results.show_result(done)
results.show_local_holdings(target)
results.rollback_panel(wh, target, picked)

results.show_history(wh, target, picked)
