"""The Preview page's result panels: the contract, the distributions, drift against the
baseline, sample payloads, the CSV export, Segment SQL and the timings."""

from __future__ import annotations

import time

import streamlit as st

from app_views.preview import TTL, cached_csv, cached_sql
from sqltraits_kit import formatting as fmt
from sqltraits_kit.traits import charts
from sqltraits_kit.traits.contract import ContractReport
from sqltraits_kit.traits.distributions import QUANTILES, summary_frame
from sqltraits_kit.traits.traitset import TraitSet
from sqltraits_kit.warehouse import Warehouse
from sqltraits_kit.workflows.preview import (
    CSV_ROWS,
    SAMPLE_RUN_ID,
    Distributions,
    DriftCheck,
    SamplePayloads,
    csv_file_name,
    csv_row_choices,
    frozen_cut_points,
    segment_dialects,
)


def contract_panel(contract: ContractReport, metric: st.delta_generator.DeltaGenerator) -> None:
    metric.metric(
        "Contract",
        "OK" if contract.ok else "Fails",
        f"{len(contract.errors)} errors · {len(contract.warnings)} warnings",
        delta_color="off",
        delta_arrow="off",
    )
    if not contract.ok:
        st.error(
            f"{len(contract.errors)} check(s) fail: Segment would refuse or drop this data, and "
            "the Publish step refuses it until they are fixed.",
            icon=":material/error:",
        )
    elif contract.warnings:
        st.warning(
            f"Publishable, with {len(contract.warnings)} warning(s) to read first.",
            icon=":material/warning:",
        )
    else:
        st.success(f"All {len(contract.rules)} checks pass.", icon=":material/check_circle:")
    if contract.failed:
        failed = contract.to_frame()
        failed = failed[~failed["passed"]][["rule", "level", "count", "message"]]
        st.dataframe(failed, hide_index=True, key="preview_failed_rules")
        for rule in contract.failed:
            if rule.sample:
                with st.expander(f"First offending rows: {rule.name}"):
                    st.dataframe(list(rule.sample), hide_index=True)
    with st.expander("Every check"):
        st.dataframe(contract.to_frame(), hide_index=True)


def _trait_tab(dists: Distributions, name: str) -> None:
    summary = dists.summaries[name]
    chart, facts = st.columns([3, 1])
    if name in dists.tiers:
        figure = charts.tier_figure(dists.tiers[name], title=f"{name}: tier sizes")
    else:
        log_scale = bool(st.session_state.get("preview_log_scale"))
        figure = charts.histogram_figure(summary, log_scale=log_scale)
    figure.update_layout(height=340)  # about as tall as the facts beside it
    chart.plotly_chart(figure, width="stretch", key=f"preview_hist_{name}")
    facts.metric(
        "Null rate",
        fmt.percent(summary.null_rate),
        f"{fmt.count(summary.nulls)} rows",
        delta_color="off",
        delta_arrow="off",
    )
    if summary.kind == "numeric":
        for q in ("p5", "p50", "p95"):
            value = summary.quantiles.get(q)
            facts.metric(q, fmt.figure(value))
    elif summary.distinct is not None:
        facts.metric("Distinct values", f"{summary.distinct:,}")
    if name in dists.tiers:
        facts.dataframe(dists.tiers[name], hide_index=True)


def distributions_panel(dists: Distributions) -> None:
    frame = summary_frame(dists.summaries)
    # The figures a reader compares, in one format (no sideways scroll, "—" where moot).
    quantiles = [q for q in ("p5", "p50", "p95") if q in QUANTILES]
    shown = frame[["trait", "kind", "nulls", "null_rate", "distinct", "min", *quantiles, "max",
                   "mean"]].copy()  # fmt: skip
    for column in ("min", *quantiles, "max", "mean"):
        shown[column] = shown[column].map(fmt.figure)
    shown["nulls"] = shown["nulls"].map(fmt.count)
    shown["distinct"] = shown["distinct"].map(fmt.count)
    shown["null_rate"] = shown["null_rate"].map(fmt.percent)
    st.dataframe(
        shown.rename(columns={"null_rate": "null rate"}),
        hide_index=True,
        key="preview_summary",
        height="content",
    )
    for tab, name in zip(st.tabs(list(dists.traits) or ["(none)"]), dists.traits, strict=False):
        with tab:
            _trait_tab(dists, name)
    if any(s.nulls for s in dists.summaries.values()):
        st.plotly_chart(charts.null_rate_figure(dists.summaries), key="preview_null_rates")
    elif dists.rows:
        st.caption("No trait has a null value.")


def drift_panel(
    check: DriftCheck,
    threshold: float,
    alerts: st.delta_generator.DeltaGenerator,
    metric: st.delta_generator.DeltaGenerator,
) -> None:
    drift = check.report
    if drift is not None or check.error:
        st.caption(f"Baseline: {check.baseline_label}.")
    metric.metric(
        "Max PSI",
        fmt.figure(None if drift is None else drift.max_psi),
        f"threshold {fmt.figure(threshold)}",
        delta_color="off",
        delta_arrow="off",
    )
    if check.warning:
        alerts.warning(check.warning, icon=":material/warning:")
    if check.leaving_warning:
        alerts.warning(check.leaving_warning, icon=":material/person_remove:")
    if check.new_traits_note:
        st.info(check.new_traits_note, icon=":material/fiber_new:")
    if check.error:
        st.warning(check.error, icon=":material/warning:")
        return
    if drift is None:
        st.info(
            f"No drift yet: {check.baseline_label.removeprefix('no baseline: ')}. It appears "
            "after the second scoring run, and is measured against what Segment holds after "
            "the first publish."
        )
        return
    m = drift.membership
    a, b, c = st.columns(3)
    a.metric("Entering", f"{m.entering:,}", help="In this table, not in the baseline")
    b.metric("Leaving", f"{m.leaving:,}", help="In the baseline, not in this table")
    c.metric("Staying", f"{m.staying:,}")
    if drift.psi:
        st.plotly_chart(charts.psi_figure(drift), key="preview_psi")
        with st.expander("PSI bins: baseline vs current share"):
            for name, psi in drift.psi.items():
                st.plotly_chart(charts.psi_bins_figure(psi), key=f"preview_psi_bins_{name}")
    if drift.transitions:
        names = list(drift.transitions)
        for tab, name in zip(st.tabs(names), names, strict=True):
            with tab:
                st.plotly_chart(
                    charts.transition_figure(drift.transitions[name]),
                    key=f"preview_transition_{name}",
                )
    if drift.movers is not None:
        movers = drift.movers.copy()  # only profiles whose value changed (top_movers)
        st.markdown(f"**Top movers** by absolute change of `{drift.movers_trait}`")
        if movers.empty:
            st.caption("No profile's value changed since the baseline.")
        else:
            for column in ("baseline", "current", "change"):
                if column in movers.columns:
                    movers[column] = movers[column].map(fmt.figure)
            st.dataframe(movers, hide_index=True, key="preview_movers")


def sample_panel(sample: SamplePayloads, ts: TraitSet) -> None:
    st.caption(
        f"The first {len(sample.messages)} profiles by `{ts.identifier}` as the "
        f"{ts.message_type} messages a publish builds (same payload code: NaN becomes null, "
        f"timestamps ISO-8601 UTC). The messageId is derived from the placeholder run id "
        f"`{SAMPLE_RUN_ID}`: a publish derives it from its own run id, and sends only profiles "
        "whose values changed."
    )
    for error in sample.errors:
        st.error(error, icon=":material/error:")
    if sample.messages:
        st.dataframe(sample.to_frame(), hide_index=True, key="preview_sample_frame")
        with st.expander(f"The {len(sample.messages)} messages as JSON"):
            st.json(list(sample.messages), expanded=3)  # the traits too, not {...}


def export_panel(key: tuple, rows: int, ts: TraitSet) -> None:
    if not rows:
        st.info("No profile to export: the table is empty.")
        return
    choices, default = csv_row_choices(rows)  # bounded on purpose: see the caption below
    limit = (
        choices[0]
        if len(choices) == 1
        else st.select_slider(
            "Rows in the CSV",
            options=choices,
            value=default,
            format_func=lambda n: f"{n:,}",
            key="preview_csv_rows",
            persist_state="session",
        )
    )
    data = cached_csv(*key, int(limit))
    st.download_button(
        f"Download the first {limit:,} of {rows:,} profiles (CSV)",
        data=data,
        file_name=csv_file_name(ts),
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        key="preview_csv",
    )
    st.caption(
        f"The file is built on the server and held in memory for this session, so the page "
        f"offers at most {CSV_ROWS[-1]:,} rows (in identifier order; "
        f"{fmt.figure(len(data) / 1e6, digits=2)} MB now). For every row, stream it to a file "
        "from a notebook: "
        "`sqltraits_kit.workflows.preview.export_csv(wh, trait_set, 'traits.csv')` writes "
        "Arrow batches "
        "with flat memory."
    )


def sql_panel(wh: Warehouse, key: tuple, ts: TraitSet) -> None:
    dialect = st.selectbox(
        "Warehouse dialect",
        segment_dialects(wh),
        key="preview_dialect",
        persist_state="session",
        help="The warehouses Segment's SQL Traits read from (Azure SQL is not supported here).",
    )
    st.code(cached_sql(*key, dialect), language="sql")
    st.caption(
        "Paste it into Segment (Unify › Computed traits › SQL) to let Segment pull the table "
        "itself instead of publishing from here. Segment then applies its own rules: only changed "
        "rows are sent, and profiles that leave the result get these traits set to null."
    )
    frozen = frozen_cut_points(ts)
    if frozen:
        st.caption(
            f"{', '.join(frozen)}: the cut points are this run's quantiles written as constants; "
            "regenerate the query after each scoring run."
        )


def timings_caption(seconds: dict[str, float], started: float) -> None:
    spent = ", ".join(f"{k} {fmt.seconds(v)}" for k, v in seconds.items())
    st.caption(
        f"Warehouse work when computed: {spent}. This render: "
        f"{fmt.seconds(time.perf_counter() - started)} (results cached {TTL // 60} min per data "
        "version)."
    )
