"""The Publish page's after-the-fact panels: the run history and failed rows, the verdicts and
the dry run, a publish's result, what the local test server holds, and rolling back a publish."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

import app_state
from app_views.publish import Source, Target, run_sync
from sqltraits_kit import formatting as fmt
from sqltraits_kit.errors import ConfigError
from sqltraits_kit.publishing import local
from sqltraits_kit.publishing.sync import (
    DryRunReport,
    failed_rows,
    history,
    make_client,
)
from sqltraits_kit.traits.traitset import TraitSet
from sqltraits_kit.warehouse import Warehouse


def history_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """The run history as a person reads it, narrow enough not to scroll sideways: counts
    with separators, UTC dates, durations; the changes in one column."""

    def changes(r: pd.Series) -> str:
        return " · ".join(f"{fmt.count(r[k])} {k}" for k in ("new", "changed", "removed"))

    return pd.DataFrame(
        {
            "started": runs["started_at"].map(fmt.instant),
            "source": runs["source"],
            "status": runs["status"],
            "sent": runs["sent"].map(fmt.count),
            "failed": runs["failed"].map(fmt.count),
            "changes": runs.apply(changes, axis=1),
            "time": runs["duration_s"].map(fmt.seconds),
            "run": runs["run_id"],
            "error": runs["error"].map(lambda e: e if isinstance(e, str) and e else fmt.DASH),
        }
    )


def show_history(wh: Warehouse, target: Target, picked: Source) -> None:
    """The run history, and this source's failed rows with a retry action."""
    st.subheader("Run history")
    with app_state.user_errors():
        runs = history(wh, limit=50)
        if runs.empty:
            st.info("No publish runs recorded in this warehouse yet.")
        else:
            st.dataframe(history_frame(runs), hide_index=True, key="publish_history")
    st.subheader("Failed rows")
    st.caption(
        "Rows Segment did not take. Every publish sends them again until they succeed; "
        "Retry sends only these."
    )
    with app_state.user_errors():
        key = picked.sync_key
        failed = failed_rows(wh, sync_key=key, limit=1_000) if key else None
        if failed is None or failed.empty:
            st.info("No failed rows waiting for this source.")
            return
        st.dataframe(failed, hide_index=True, key="publish_failed")
        if st.button("Retry failed rows", disabled=not target.can_send, key="publish_retry"):
            access = bool(target.access)
            result = run_sync(
                wh,
                target,
                picked,
                only_failed=True,
                allow_drift=access and st.session_state.get("publish_allow_drift", False),
                allow_invalid=access and st.session_state.get("publish_allow_invalid", False),
            )
            if result is not None:
                st.session_state["publish_result"] = result.to_dict()
                st.rerun()


def _verdicts(report: DryRunReport) -> None:
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
                f"Drift: max PSI {fmt.figure(verdicts.max_psi)} over the threshold "
                f"{fmt.figure(verdicts.drift_threshold)} ({', '.join(verdicts.drift_over)}): "
                "a publish needs the override below",
                icon=":material/block:",
            )
        else:
            st.success(
                f"Drift: max PSI {fmt.figure(verdicts.max_psi)} "
                f"(threshold {fmt.figure(verdicts.drift_threshold)})",
                icon=":material/check_circle:",
            )
        if verdicts.drift is not None and verdicts.drift.new_traits:
            new = ", ".join(verdicts.drift.new_traits)
            st.caption(f"New since the published snapshot (no drift figure): {new}")


def show_dry_run(report: DryRunReport) -> None:
    """The verdicts, the counts, the requests and duration, and the exact sample payloads."""
    _verdicts(report)
    for col, label in zip(st.columns(4), ("new", "changed", "removed", "unchanged"), strict=True):
        col.metric(label.title(), f"{getattr(report, label):,}")
    approx = "" if report.requests_exact else "about "
    duration = (
        "no client-side rate limit"
        if report.expected_seconds is None
        else f"about {fmt.seconds(report.expected_seconds)} at the configured rate limit"
    )
    st.markdown(
        f"Would send **{report.to_send:,}** messages in {approx}**{report.requests:,}** "
        f"requests ({fmt.figure(report.payload_bytes / 1e6, digits=2)} MB): {duration}."
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


def show_local_holdings(target: Target) -> None:
    """What the local test server holds after a publish: the traits Segment would now hold."""
    if target.destination.name != local.LOCAL:
        return
    rows = local.local_holdings()
    st.subheader("What the local test server holds")
    if rows:
        st.caption(
            "Local test server, nothing leaves this machine: these are the traits Segment would "
            f"now hold, one row per profile ({len(rows):,} profiles)."
        )
        st.dataframe(rows, hide_index=True, width="stretch", key="publish_local_holdings")
        st.download_button(
            "Download what it holds (CSV)",
            data=_csv(rows),
            file_name="local_test_server_holdings.csv",
            mime="text/csv",
            key="publish_local_csv",
            on_click="ignore",  # a download needs no rerun
            icon=":material/download:",
        )
    else:
        st.caption(
            "Local test server, nothing leaves this machine. Nothing received yet: publish to "
            "see here the traits Segment would then hold."
        )


def _csv(rows: list[dict[str, Any]]) -> str:
    return pd.DataFrame(rows).to_csv(index=False)


def show_result(done: dict[str, Any]) -> None:
    """The last publish of this session, in one line."""
    summary = (
        f"Run {done['run_id']} {done['status']}: {done['sent']:,} sent, {done['failed']:,} "
        f"failed ({done['new']:,} new, {done['changed']:,} changed, {done['removed']:,} removed, "
        f"{done['unchanged']:,} unchanged) in {done['requests']:,} requests, "
        f"{fmt.seconds(done['duration_s'])}"
    )
    if done["status"] == "succeeded":
        st.success(summary, icon=":material/check_circle:")
    else:
        error = f" — {done['error']}" if done.get("error") else ""
        st.warning(summary + error, icon=":material/warning:")


def rollback_panel(wh: Warehouse, target: Target, picked: Source) -> None:
    """Re-publish what an earlier run of this source left in Segment: a dry run, then the
    rollback itself, through the same sync (gates, ledger, only the profiles that differ)."""
    from sqltraits_kit.publishing.sync import published_runs, rollback
    from sqltraits_kit.publishing.sync.client import destination_of

    if picked.sync_key is None:
        return
    with app_state.user_errors():
        runs = published_runs(wh, picked.sync_key, destination=destination_of(target.destination))
    if len(runs) < 2:
        return  # nothing earlier than what Segment holds now
    st.subheader("Roll back")
    labels = {
        r["run_id"]: f"{r['run_id']} — {r['source']}, {r['sent']:,} sent ({r['status']})"
        for r in runs[1:]
    }
    run_id = st.selectbox(
        "Restore the version an earlier run left",
        list(labels),
        format_func=labels.__getitem__,
        key="publish_rollback_run",
        help="Sends only the profiles whose values differ from that version; profiles "
        "published since get null traits. History shows it as a rollback of that run.",
    )
    source = picked.source if isinstance(picked.source, TraitSet) else picked.sync_key
    allow_drift = bool(target.access) and st.session_state.get("publish_allow_drift", False)
    options = {"sync_key": picked.sync_key, "allow_drift": allow_drift}
    left, right = st.columns(2)
    if left.button("Dry run the rollback", key="publish_rollback_dry"):
        with app_state.user_errors():
            dest = destination_of(target.destination)
            report = rollback(wh, source, run_id, dry_run=True, destination=dest, **options)
            show_dry_run(report)
    if right.button(
        f"Roll back to run {run_id}", disabled=not target.can_send, key="publish_rollback"
    ):
        with app_state.user_errors():
            if not target.access:
                raise ConfigError(f"not rolled back: {target.access.reason}")
            d = target.destination
            client = make_client(write_key=d.write_key, region=d.region, endpoint=d.endpoint)
            try:
                result = rollback(wh, source, run_id, client=client, **options)
            finally:
                client.close()
            st.session_state["publish_result"] = result.to_dict()
            st.rerun()
