"""The Train page's result panels: the run's result with its figures and charts, saving and
activating a version, and the saved versions of this warehouse with a comparison of two."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import streamlit as st

import app_state
from sqltraits_kit import formatting as fmt
from sqltraits_kit.errors import SqlTraitsError
from sqltraits_kit.modelling import charts
from sqltraits_kit.modelling.baselines import BASELINES
from sqltraits_kit.modelling.feature_spec import FeatureSpec
from sqltraits_kit.modelling.registry import ModelCard, Registry
from sqltraits_kit.modelling.training import save_result
from sqltraits_kit.warehouse import Warehouse
from sqltraits_kit.workflows.defaults import models_by_warehouse


def _save(registry: Registry) -> None:
    try:
        st.session_state["train_result"] = save_result(st.session_state["train_result"], registry)
    except SqlTraitsError as exc:
        st.session_state["train_flash"] = ("error", str(exc))


def _activate(registry: Registry, by_ref: dict) -> None:
    card = by_ref[st.session_state["train_activate_ref"]]
    try:
        registry.set_active(card.name, card.version)
    except SqlTraitsError as exc:
        st.session_state["train_flash"] = ("error", str(exc))
    else:
        message = f"{card.ref} is now the active {card.name!r} model"
        st.session_state["train_flash"] = ("success", message)


def flash(kinds: tuple[str, ...]) -> None:
    """The message a button callback left, shown where it belongs."""
    message = st.session_state.get("train_flash")
    if message is not None and message[0] in kinds:
        del st.session_state["train_flash"]
        getattr(st, message[0])(message[1])


def _save_section(result: Any, registry: Registry) -> None:
    if result.saved:
        st.success(
            f"Saved as {result.card.ref} in `{registry.root}`.", icon=":material/check_circle:"
        )
        app_state.page_link("pages/score.py", "Score profiles with it", ":material/target:")
        return
    left, right = st.columns([1, 3], vertical_alignment="center")
    left.button(
        "Save to the registry",
        type="primary",
        key="train_save",
        on_click=_save,
        args=(registry,),
        icon=":material/save:",
    )
    right.caption(
        f"Not saved yet: the Score page only sees saved models. Saves as the next version "
        f"of **{result.card.name}**."
    )


def metrics_frame(metrics: dict, comparison: list | None) -> pd.DataFrame:
    """The card's metrics table with every figure formatted (units, 4 significant digits)."""
    table = charts.metrics_table(metrics, comparison)
    keys = {v: k for k, v in charts._LABELS.items()}
    for column in ("model", "best baseline", "reference"):
        table[column] = [
            fmt.metric_value(keys.get(label, ""), value)
            for label, value in zip(table["metric"], table[column], strict=True)
        ]
    table["beats it"] = table["beats it"].map(fmt.value)
    table["baseline"] = table["baseline"].map(fmt.value)
    table["metric"] = [fmt.metric_label(keys.get(label, label)) for label in table["metric"]]
    return table


def last_result(registry: Registry, kind: str) -> None:
    """This session's last training result, under the form of the kind it was trained for
    (switching Predict does not leave a churn result under the LTV form)."""
    result = st.session_state.get("train_result")
    if result is None:
        return
    trained_for = st.session_state.get("train_result_kind", kind)
    if trained_for != kind:
        st.caption(
            f"The last result ({result.card.ref}, a {result.card.kind} model) is kept: choose "
            f"*{trained_for}* above to see it."
        )
        return
    show_result(result, registry)
    with st.expander("Model card"):
        st.json(result.card.to_dict())


def _labelled(text: str) -> str:
    """A card's sentence with the metric keys it names as the metrics table labels them."""
    return re.sub(
        r"\bon ([a-z_]+):", lambda m: f"on {fmt.metric_label(m.group(1))}:", text, count=1
    )


def show_result(result: Any, registry: Registry) -> None:
    card = result.card
    title = "BG/NBD + Gamma-Gamma" if card.estimator == "btyd" else card.estimator
    kind = {"churn": "churn model", "ltv": "LTV model"}.get(card.kind)  # BTYD: the title says it
    st.subheader(f"{card.name}: {kind} · {title}" if kind else f"{card.name}: {title}")
    st.caption(
        f"Trained on {fmt.count(card.training_rows)} profiles at cutoff {card.cutoff}; tested "
        f"out of time on {fmt.count(card.test_rows)} profiles at {card.test_cutoff} (horizon "
        f"{card.horizon_days} days) · {fmt.seconds(result.seconds)}"
    )
    _save_section(result, registry)
    if card.warnings:  # one box, in the table's words (ROC AUC, not auc)
        st.warning("\n".join(f"- {_labelled(w)}" for w in card.warnings), icon=":material/warning:")
    table = metrics_frame(result.metrics, card.comparison)
    has_reference = any(k.startswith("reference_") for k in result.metrics)
    if not has_reference:
        table = table.drop(columns="reference")
    st.dataframe(table, hide_index=True, key="train_metrics", height="content")
    kinds = ("churn", "ltv") if card.kind == "btyd" else (card.kind,)
    rules = [
        f"{name}: {what}"
        for kind in kinds
        for name, what in BASELINES[kind].items()
        if name in (card.baselines or {})
    ]
    st.caption(
        "Best baseline: the best naive rule on the same test rows (" + "; ".join(rules) + ")."
    )
    if has_reference:
        st.caption(
            "Reference: BG/NBD and Gamma-Gamma with the sample's true population parameters, "
            "fed each customer's order history — the best achievable from orders alone."
        )
    else:
        st.caption("No reference predictor: this warehouse has no `sample_truth` table.")
    _details(card)
    figures = charts.evaluation_figures(card.kind, result.tables)
    names = list(figures)
    for start in range(0, len(names), 2):
        for col, name in zip(st.columns(2), names[start : start + 2], strict=False):
            col.plotly_chart(figures[name], key=f"train_chart_{name}")
    for note in card.notes:
        st.caption(f"Note: {note}")


def _details(card: ModelCard) -> None:
    if card.selection:
        sel = card.selection
        st.caption(
            f"Champion **{sel['champion']}**: {sel['reason']} (validated at "
            f"{sel['validation_cutoff']} on models fitted before it; the test window was not "
            "used to choose)."
        )
        candidates = charts.candidates_table(sel)
        for column in candidates.columns:
            if column.startswith(("validation", "test")):
                candidates[column] = candidates[column].map(fmt.figure)
        st.dataframe(candidates, hide_index=True, key="train_candidates", height="content")
    if card.feature_spec:
        spec = FeatureSpec.from_dict(card.feature_spec)
        st.caption(
            f"Own features ({'instead of' if spec.replace else 'beside'} the built-in set): "
            f"{', '.join(spec.columns())}."
        )
    if card.refit:
        st.caption(
            f"Tested as fitted on {', '.join(card.training_cutoffs or [card.cutoff])}; the model "
            f"saved is refit on {', '.join(card.refit['cutoffs'])} "
            f"({fmt.count(card.refit['training_rows'])} rows), the latest complete window."
        )
    if card.params:
        unit = {"W": "weeks", "D": "days", "M": "months"}.get(card.params.get("time_unit"), "")
        st.caption(f"Fitted parameters{f' (time in {unit})' if unit else ''}:")
        fitted = [
            {"model": model, "parameter": name, "value": fmt.figure(value)}
            for model, values in card.params.items()
            if isinstance(values, dict)
            for name, value in values.items()
        ]
        st.dataframe(pd.DataFrame(fitted), hide_index=True, key="train_params", height="content")


# ------------------------------------------------------------------ saved versions
def _versions_frame(registry: Registry, cards: list[ModelCard]) -> pd.DataFrame:
    active = {name: registry.active(name) for name in {c.name for c in cards}}
    return pd.DataFrame(
        [
            {
                "model": c.ref,
                "active": (a := active[c.name]) is not None and a.version == c.version,
                "kind": c.kind,
                "estimator": c.estimator,
                "cutoff": c.cutoff,
                "horizon (days)": c.horizon_days,
                "ROC AUC": fmt.figure(c.metrics.get("auc")),
                fmt.metric_label("gini"): fmt.figure(c.metrics.get("gini")),
                "training rows": fmt.count(c.training_rows),
                "created": fmt.instant(c.created_at),
            }
            for c in cards
        ]
    )


def _compare(a: ModelCard, b: ModelCard) -> pd.DataFrame:
    keys = [k for k in dict.fromkeys([*a.metrics, *b.metrics]) if not k.endswith("_rows")]
    facts = ["estimator", "cutoff", "horizon (days)", "features", "training rows"]

    def column(c: ModelCard) -> list[str]:
        head = [c.estimator, c.cutoff, str(c.horizon_days), str(len(c.features))]
        return [
            *head,
            fmt.count(c.training_rows),
            *(fmt.metric_value(k, c.metrics.get(k)) for k in keys),
        ]

    labels = [*facts, *(fmt.metric_label(k) for k in keys)]
    return pd.DataFrame({"": labels, a.ref: column(a), b.ref: column(b)})


def _compare_defaults(cards: list[ModelCard]) -> tuple[str, str] | None:
    """Two versions of one model (the latest two of the first name that has two), else the
    first two of one kind; None when no two models are of one kind (their metrics differ:
    a churn model beside an LTV one is a table of dashes)."""
    by_name: dict[str, list[ModelCard]] = {}
    for c in cards:
        by_name.setdefault(c.name, []).append(c)
    for group in by_name.values():
        if len(group) >= 2:
            pair = sorted(group, key=lambda c: c.version, reverse=True)[:2]
            return pair[1].ref, pair[0].ref
    for c in cards:
        same = [d for d in cards if d.kind == c.kind and d is not c]
        if same:
            return c.ref, same[0].ref
    return None


def versions_section(registry: Registry, wh: Warehouse) -> None:
    st.subheader("Saved versions")
    here, elsewhere = models_by_warehouse(registry.list(), wh)
    if elsewhere:
        with st.expander(f"{len(elsewhere)} model(s) trained on another warehouse"):
            st.caption(
                "Their tables are not in this warehouse: the Score page lists them only when "
                "asked. Trained on: "
                + ", ".join(sorted({f"`{c.warehouse or 'unknown'}`" for c in elsewhere}))
            )
            st.dataframe(_versions_frame(registry, elsewhere), hide_index=True)
    if not here:
        st.info(f"No saved models for this warehouse in `{registry.root}` yet.")
        return
    st.dataframe(_versions_frame(registry, here), hide_index=True, key="train_versions")
    st.caption(
        "The Score page and trait sets use a model's active version, or its latest when none "
        "is marked active."
    )
    refs = [c.ref for c in here]
    by_ref = {c.ref: c for c in here}
    left, right = st.columns(2)
    with left:
        st.selectbox("Score with", refs, key="train_activate_ref", persist_state="session")
        st.button(
            "Mark as active", key="train_activate", on_click=_activate, args=(registry, by_ref)
        )
    pair = _compare_defaults(here)
    if pair is None:
        right.caption("Save a second model of one kind to compare two side by side.")
        return
    comparable = [c.ref for c in here if any(d.kind == c.kind and d is not c for d in here)]
    with right:
        a = st.selectbox(
            "Compare",
            comparable,
            index=comparable.index(pair[0]),
            key="train_compare_a",
            persist_state="session",
        )
        rest = [r for r in comparable if r != a and by_ref[r].kind == by_ref[a].kind]
        b = st.selectbox(
            "with",
            rest,
            index=rest.index(pair[1]) if pair[1] in rest else 0,
            key="train_compare_b",
            persist_state="session",
            help="Models of the same kind: their metrics are the same.",
        )
    st.dataframe(
        _compare(by_ref[a], by_ref[b]), hide_index=True, key="train_compare", height="content"
    )
