"""Publish: send the changed traits to Segment — settings, verdicts, dry run, publish, history.

The work is :mod:`sqltraits_kit.publishing.sync`'s; this page only collects choices and shows
results. A
publish runs in this script's thread (the session's warehouse connection is not thread-safe) and
reports progress through the sync's ``progress`` callback.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import streamlit as st

import app_state
from sqltraits_kit.errors import ConfigError
from sqltraits_kit.publishing.sync import (
    DryRunReport,
    SyncProgress,
    SyncResult,
    dry_run,
    failed_rows,
    history,
    make_client,
    resolve_source,
    sync,
)
from sqltraits_kit.traits.traitset import TraitSet
from sqltraits_kit.workflows.catalog import trait_set_files

REMOVE_LABELS = {"null": "set their traits to null (Segment's rule)", "keep": "leave them alone"}

settings = app_state.settings()
wh = app_state.warehouse()
access = app_state.publish_access()  # publish, retry and the gate overrides need it
# Where a publish goes: one of the destinations the operator configured, never a typed URL.
DESTINATIONS = {d.name: d for d in settings.publish_destinations()}


def limit(value: float) -> float | None:
    return float(value) or None


def run_sync(
    source: Any,
    options: dict[str, Any],
    *,
    only_failed: bool,
    allow_drift: bool,
    allow_invalid: bool,
) -> SyncResult | None:
    """Publish with a live progress bar; errors show as messages."""
    bar = st.progress(0.0, text="Starting…")

    def progress(p: SyncProgress) -> None:
        bar.progress(
            p.fraction,
            text=f"{p.phase}: {p.sent:,} sent, {p.failed:,} failed of {p.total:,} "
            f"({p.requests:,} requests)",
        )

    with app_state.user_errors():
        if not access:  # the buttons are disabled too; this holds if a click gets through
            raise ConfigError(f"not published: {access.reason}")
        client = make_client(  # no settings: nothing of the single-key config leaks in
            write_key=destination.write_key,
            region=destination.region,
            endpoint=destination.endpoint,
            max_requests_per_second=st.session_state.get("publish_rps"),
            max_events_per_second=st.session_state.get("publish_eps"),
        )
        try:
            return sync(
                wh,
                source,
                client=client,
                allow_drift=allow_drift,
                allow_invalid=allow_invalid,
                only_failed=only_failed,
                progress=progress,
                **options,
            )
        finally:
            client.close()
    return None


def show_history(source: Any, options: dict[str, Any], sync_key: str | None) -> None:
    """The run history, and this source's failed rows with a retry action."""
    st.subheader("Run history")
    with app_state.user_errors():
        runs = history(wh, limit=50)
        if runs.empty:
            st.info("No publish runs recorded in this warehouse yet.")
        else:
            st.dataframe(runs, hide_index=True, key="publish_history")
    st.subheader("Failed rows")
    st.caption(
        "Rows Segment did not take. Every publish sends them again until they succeed; "
        "Retry sends only these."
    )
    with app_state.user_errors():
        failed = failed_rows(wh, sync_key=sync_key, limit=1_000) if sync_key else None
        if failed is None or failed.empty:
            st.info("No failed rows waiting for this source.")
            return
        st.dataframe(failed, hide_index=True, key="publish_failed")
        if st.button("Retry failed rows", disabled=not can_send, key="publish_retry"):
            result = run_sync(
                source,
                options,
                only_failed=True,
                allow_drift=bool(access) and st.session_state.get("publish_allow_drift", False),
                allow_invalid=bool(access) and st.session_state.get("publish_allow_invalid", False),
            )
            if result is not None:
                st.session_state["publish_result"] = result.to_dict()
                st.rerun()


def show_dry_run(report: DryRunReport) -> None:
    verdicts = report.verdicts
    left, right = st.columns(2)
    with left:
        if verdicts.validation_ok:
            st.success(
                "Validation: Segment's SQL-trait contract holds", icon=":material/check_circle:"
            )
        else:
            errors = "; ".join(f"{e.name}: {e.message}" for e in verdicts.validation.errors)
            st.error(f"Validation failed: {errors}", icon=":material/block:")
        for w in verdicts.validation.warnings:
            st.caption(f":material/warning: {w.name}: {w.message}")
    with right:
        if verdicts.drift is None:
            st.info("Drift: nothing published under this sync key yet", icon=":material/info:")
        elif verdicts.drift_over:
            st.error(
                f"Drift: max PSI {verdicts.max_psi:.3f} over the threshold "
                f"{verdicts.drift_threshold:g} ({', '.join(verdicts.drift_over)}): a publish "
                "needs the override below",
                icon=":material/block:",
            )
        else:
            psi = "n/a" if verdicts.max_psi is None else f"{verdicts.max_psi:.3f}"
            st.success(
                f"Drift: max PSI {psi} (threshold {verdicts.drift_threshold:g})",
                icon=":material/check_circle:",
            )
        if verdicts.drift is not None and verdicts.drift.new_traits:
            new = ", ".join(verdicts.drift.new_traits)
            st.caption(f"New since the published snapshot (no drift figure): {new}")
    for col, label in zip(st.columns(4), ("new", "changed", "removed", "unchanged"), strict=True):
        col.metric(label.title(), f"{getattr(report, label):,}")
    approx = "" if report.requests_exact else "about "
    duration = (
        "no client-side rate limit"
        if report.expected_seconds is None
        else f"about {report.expected_seconds:,.1f} s at the configured rate limit"
    )
    st.markdown(
        f"Would send **{report.to_send:,}** messages in {approx}**{report.requests:,}** "
        f"requests ({report.payload_bytes / 1e6:.2f} MB): {duration}."
    )
    if report.removed and report.on_remove == "null":
        st.warning(f"{report.removed:,} profiles left the result: their traits become null.")
    if report.rejected:
        st.warning(
            f"{report.rejected:,} rows would be refused: "
            + "; ".join(f"{i}: {r}" for i, r in report.rejections[:3])
        )
    if report.sample:
        with st.expander("Sample payloads — exact JSON as sent (message ids differ per run)"):
            for text in report.sample:
                st.code(text, language="json", wrap_lines=True)


# ---------------------------------------------------------------- Segment settings
st.title("Publish")
st.caption(
    "Sends only the profiles whose traits changed since Segment last acknowledged them. "
    "A publish that is interrupted is resumed by the next one."
)
destination = DESTINATIONS[
    st.selectbox(
        "Destination",
        list(DESTINATIONS),
        format_func=lambda name: DESTINATIONS[name].label,
        help="The Segment workspaces the operator configured in secrets.toml or the environment.",
        key="publish_destination",
        persist_state="session",
    )
]
key = destination.write_key
can_send = bool(access) and key is not None
with st.expander("Segment settings", expanded=key is None):
    if key is None:
        st.warning(
            f"No write key for {destination.label}: the operator adds `SEGMENT_WRITE_KEY` (or "
            "a destination's `write_key`) to `.streamlit/secrets.toml` or the environment. "
            "Checks and dry runs work without one."
        )
    else:
        st.markdown(f"Write key: `{key.masked()}`")
    where = destination.endpoint or f"Segment's {destination.region.upper()} endpoint"
    st.caption(
        f"Sends to {where}. Destinations, keys and endpoints are the operator's settings; see "
        "the README's *Deploying for a team*."
    )
    if destination.name != "production":
        st.caption(f"Sync state of its own: sync keys end in `@{destination.name}`.")
    left, right = st.columns(2)
    left.number_input(
        "Max requests/s (0 = no limit)",
        min_value=0.0,
        value=float(settings.max_requests_per_second),
        key="publish_rps",
        persist_state="session",
    )
    right.number_input(
        "Max events/s (0 = no limit)",
        min_value=0.0,
        value=float(settings.max_events_per_second),
        key="publish_eps",
        persist_state="session",
    )

# ---------------------------------------------------------------- source
st.subheader("What to publish")
files = [p.name for p in trait_set_files(app_state.TRAITSETS)]
left, right = st.columns([3, 2])
kind_of_source = left.radio(
    "Source",
    ["Trait set", "Table"],
    index=0 if files else 1,
    horizontal=True,
    key="publish_source_kind",
    persist_state="session",
)
# Input tables (users with their e-mails...) are no trait source: the list holds the output
# tables the Score page writes, and every table only when a publisher asks for it.
any_table = right.toggle(
    "Any table (advanced)",
    disabled=not access,
    help="Lists every table of the warehouse, not only output tables. "
    + ("" if access else f"Not for this session: {access.reason}."),
    key="publish_any_table",
    persist_state="session",
)
tables = app_state.output_tables(wh, any_table=bool(any_table and access))
source: Any = None
options: dict[str, Any] = {}
sync_key: str | None = None
with app_state.user_errors():
    if kind_of_source == "Trait set" and files:
        name = st.selectbox("Trait set", files, key="publish_traitset", persist_state="session")
        source = TraitSet.load(app_state.TRAITSETS / name)
        # The threshold chosen on the Preview page for this trait set is the one in use.
        chosen = st.session_state.get("preview_thresholds", {}).get(source.name)
        threshold = f"drift threshold {source.drift_threshold:g}"
        if chosen is not None and chosen != source.drift_threshold:
            threshold = (
                f"drift threshold {chosen:g}, set on the Preview page (the trait set says "
                f"{source.drift_threshold:g})"
            )
            source = dataclasses.replace(source, drift_threshold=float(chosen))
        st.caption(
            f"{source.kind} traits ({source.message_type} calls) from {source.source_label}; "
            f"{threshold}"
        )
        if source.table is not None and not wh.has_table(source.table):
            st.info(
                f"The table `{source.table}` that trait set **{source.name}** reads does not "
                "exist in this warehouse yet. Score profiles first: the Score page writes it.",
                icon=":material/info:",
            )
            app_state.page_link("pages/score.py", "Score profiles", ":material/target:")
            source = None
    elif kind_of_source == "Table" and tables:
        source = st.selectbox("Table", tables, key="publish_table", persist_state="session")
        columns = list(wh.table(source).columns)
        left, right = st.columns(2)
        kind = left.radio(
            "Calls",
            ["identify", "group"],
            horizontal=True,
            key="publish_kind",
            persist_state="session",
        )
        wanted = "group_id" if kind == "group" else "user_id"
        id_column = right.selectbox(
            "Identifier column",
            columns,
            index=columns.index(wanted) if wanted in columns else 0,
            key="publish_id_column",
            persist_state="session",
        )
        options = {"kind": kind, "id_column": id_column}
    elif kind_of_source == "Trait set" and not files:
        st.info(f"No trait-set files in {app_state.TRAITSETS}.")
    elif kind_of_source == "Table":
        st.info(
            "No output table to publish yet: the Score page writes one."
            + ("" if any_table and access else " Other tables: *Any table (advanced)*.")
        )
    if source is not None:
        default_remove = source.on_remove if isinstance(source, TraitSet) else "null"
        options["on_remove"] = st.radio(
            "Profiles that left the result",
            ["null", "keep"],
            index=["null", "keep"].index(default_remove),
            format_func=REMOVE_LABELS.__getitem__,
            horizontal=True,
            key="publish_on_remove",
            persist_state="session",
        )
        base_key = resolve_source(wh, source, **options).sync_key
        sync_key = options["sync_key"] = destination.sync_key(base_key)
        st.caption(f"Sync key `{sync_key}`: the published state this source is diffed against.")

if sync_key is None:  # no usable source: the history is still worth seeing
    show_history(source, options, None)
    st.stop()

signature = json.dumps({"source": str(source), **options}, sort_keys=True, default=str)
if st.session_state.get("publish_signature") != signature:
    st.session_state["publish_signature"] = signature
    st.session_state.pop("publish_dry", None)

# ---------------------------------------------------------------- verdicts and dry run
st.subheader("Checks and dry run")
if st.button("Check and dry run", key="publish_dry_button", icon=":material/rule:"):
    with app_state.user_errors(), st.spinner("Validating, diffing, building the payloads…"):
        st.session_state["publish_dry"] = dry_run(
            wh,
            source,
            max_requests_per_second=limit(st.session_state["publish_rps"]),
            max_events_per_second=limit(st.session_state["publish_eps"]),
            **options,
        )
report: DryRunReport | None = st.session_state.get("publish_dry")
dry_slot = st.empty()  # a publish below replaces the report: its counts are then out of date
if report is None:
    dry_slot.caption("Run the checks to see the verdicts, the counts and the exact payloads.")
else:
    with dry_slot.container():
        show_dry_run(report)

# ---------------------------------------------------------------- publish
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
allow_drift, allow_invalid = bool(access) and drift_box, bool(access) and invalid_box
if st.button(
    f"Publish to {destination.label}",
    type="primary",
    disabled=not can_send,
    key="publish_button",
    icon=":material/send:",
):
    result = run_sync(
        source, options, only_failed=False, allow_drift=allow_drift, allow_invalid=allow_invalid
    )
    if result is not None:
        st.session_state["publish_result"] = result.to_dict()
        st.session_state.pop("publish_dry", None)  # the published state moved on
        dry_slot.caption("Published: run the checks again to see what a next publish would send.")
if not access:
    st.caption(f"Publishing is disabled: {access.reason}.")
elif key is None:
    st.caption("Publishing is disabled until a write key is configured.")

done = st.session_state.get("publish_result")
if done:
    summary = (
        f"Run {done['run_id']} {done['status']}: {done['sent']:,} sent, {done['failed']:,} "
        f"failed ({done['new']:,} new, {done['changed']:,} changed, {done['removed']:,} removed, "
        f"{done['unchanged']:,} unchanged) in {done['requests']:,} requests, "
        f"{done['duration_s']:.1f} s"
    )
    if done["status"] == "succeeded":
        st.success(summary, icon=":material/check_circle:")
    else:
        error = f" — {done['error']}" if done.get("error") else ""
        st.warning(summary + error, icon=":material/warning:")

show_history(source, options, sync_key)
