"""The Train page's panels: what the trait sets in use need (the guided path), the table mapping
(saved in the project, else guessed with its reasons, then confirmed), the model's options, the
run, its result and the saved versions of this warehouse.

The rules (which columns fit a field, whether a mapping is usable, which models a trait set
needs, how a number reads) are :mod:`sqltraits_kit.workflows.training_setup`'s and
:mod:`sqltraits_kit.formatting`'s.
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import pandas as pd
import streamlit as st

import app_state
from sqltraits_kit import formatting as fmt
from sqltraits_kit.errors import ConfigError, SqlTraitsError
from sqltraits_kit.modelling import charts
from sqltraits_kit.modelling.baselines import BASELINES
from sqltraits_kit.modelling.feature_spec import FeatureSpec
from sqltraits_kit.modelling.features import TableMapping
from sqltraits_kit.modelling.registry import ModelCard, Registry
from sqltraits_kit.modelling.training import default_cutoff, save_result
from sqltraits_kit.warehouse import Warehouse
from sqltraits_kit.workflows.defaults import models_by_warehouse
from sqltraits_kit.workflows.training_setup import (
    MAPPING_FIELDS,
    MappingProposal,
    NeededModel,
    check_mapping,
    column_choices,
    needed_models,
)

NONE = "(none)"
SPEC_EXAMPLE = """replace = false

[[aggregate]]
name = "searches_30d"
table = "tracks"
function = "count"
window_days = 30
where = { event = "Products Searched" }
"""


# ------------------------------------------------------------------ cached warehouse questions
@st.cache_data(ttl=300, show_spinner=False)
def _choices(url: str, _wh: Warehouse, table: str, role: str) -> list[str]:
    return column_choices(_wh, table, role)


@st.cache_data(ttl=300, show_spinner="Checking the mapping in the warehouse…")
def _check(url: str, _wh: Warehouse, values: str) -> tuple[TableMapping | None, list[str]]:
    return check_mapping(_wh, json.loads(values))


@st.cache_data(ttl=300, show_spinner="Finding the latest cutoff in the warehouse…")
def _latest_cutoff(url: str, _wh: Warehouse, mapping: str, horizon_days: int) -> str:
    cut = default_cutoff(
        _wh, TableMapping.from_dict(json.loads(mapping)), horizon_days=horizon_days
    )
    return cut.isoformat()


def latest_cutoff(wh: Warehouse, mapping: TableMapping, horizon: int) -> str:
    return _latest_cutoff(wh.url, wh, json.dumps(mapping.to_dict(), sort_keys=True), horizon)


# ------------------------------------------------------------------ the guided path
def _prepare(need: NeededModel) -> None:
    """Button callback: the form below is set to train exactly this model."""
    kind = need.train_kind
    st.session_state["train_kind"] = kind
    st.session_state[f"train_estimator_{kind}"] = need.estimator
    st.session_state[f"train_name_{kind}_{need.estimator}"] = need.name
    if need.horizon_days:
        st.session_state["train_horizon"] = need.horizon_days
    st.session_state["train_guide_flash"] = f"The form below is set to train {need.name!r}."


def guided_path(wh: Warehouse, cards: list[ModelCard]) -> None:
    """What the trait sets in use need, and a button per model still to train."""
    sets = app_state.trait_sets(wh, scored_only=True)
    if not sets:
        st.caption(
            "No trait set uses this warehouse yet: train and save a model, score it, then "
            "create a trait set from the output table on the Preview page."
        )
        return
    names = [ts.name for ts in sets]
    chosen = sets[0]
    if len(sets) > 1:
        picked = st.selectbox(
            "Train for trait set", names, key="train_for_traitset", persist_state="session"
        )
        chosen = sets[names.index(picked)] if picked in names else sets[0]
    needs = needed_models(chosen, cards)
    prepared = st.session_state.pop("train_guide_flash", None)
    todo = [n for n in needs if not n.ready]
    if not todo:
        st.success(
            f"Trait set **{chosen.name}** has every model it needs: "
            + ", ".join(f"{n.name} ({n.saved.ref})" for n in needs if n.saved),
            icon=":material/check_circle:",
        )
        app_state.page_link("pages/score.py", "Score profiles", ":material/target:")
        return
    st.info(
        f"Trait set **{chosen.name}** needs {len(needs)} model(s); {len(todo)} to train. "
        "Each button sets the form below; then press Train and save.",
        icon=":material/route:",
    )
    for need in todo:
        left, right = st.columns([1, 3], vertical_alignment="center")
        left.button(
            f"Set up {need.name}",
            key=f"train_prepare_{need.name}",
            on_click=_prepare,
            args=(need,),
            icon=":material/arrow_downward:",
        )
        why = f"writes {', '.join(need.columns)}" if need.columns else "scores this trait set"
        if need.saved is not None and need.missing:
            why = f"{need.saved.ref} does not write {', '.join(need.missing)}"
        horizon = f", horizon {need.horizon_days} days" if need.horizon_days else ""
        right.caption(f"**{need.name}**: a {need.kind} model{horizon}; {why}.")
    if prepared:
        st.caption(f":material/check: {prepared}")


# ------------------------------------------------------------------ the table mapping
def _reset_mapping_widgets(wh: Warehouse) -> None:
    """The mapping widgets belong to one warehouse: another one starts from its own proposal."""
    if st.session_state.get("train_map_for") != wh.url:
        for key in [k for k in st.session_state if str(k).startswith("train_map_")]:
            del st.session_state[key]
        st.session_state["train_map_for"] = wh.url


def _field(wh: Warehouse, name: str, proposal: MappingProposal, chosen: dict) -> None:
    spec = MAPPING_FIELDS[name]
    if spec.table_field is None:
        options = wh.tables()
    else:
        table = chosen.get(spec.table_field)
        if table is None:
            return  # no such table mapped: its columns are moot
        options = _choices(wh.url, wh, table, spec.role)
    if spec.optional:
        options = [NONE, *options]
    if not options:
        st.warning(f"{spec.label}: no column of a fitting type.", icon=":material/warning:")
        chosen[name] = None
        return
    proposed = proposal.values.get(name) or NONE
    value = st.selectbox(
        spec.label,
        options,
        index=options.index(proposed) if proposed in options else 0,
        key=f"train_map_{name}",
        persist_state="session",
        help=proposal.reasons.get(name),
    )
    chosen[name] = None if value == NONE else value


def _save_mapping(mapping: TableMapping) -> None:
    wh = app_state.warehouse()
    horizon = int(st.session_state.get("train_horizon") or 90)
    app_state.project().save(wh.url, mapping=mapping, horizon_days=horizon)
    st.session_state["train_map_flash"] = (
        f"Mapping and horizon ({horizon} days) saved in `{app_state.project().path}` for this "
        "warehouse: every page, `sqltraits train` and notebooks start from them."
    )


def _reasons(proposal: MappingProposal, chosen: dict[str, str | None]) -> None:
    """Why each table was proposed, for the fields still as guessed."""
    lines = [
        f"- **{MAPPING_FIELDS[name].label}** — {reason}"
        for name, reason in proposal.reasons.items()
        if name in MAPPING_FIELDS and (chosen.get(name) or None) == proposal.values.get(name)
    ]
    if lines:
        st.caption("Why this guess:\n" + "\n".join(lines))


def mapping_panel(wh: Warehouse) -> TableMapping | None:
    """The mapping form; returns the mapping when it is usable, else None (and says why).

    Confirming saves it, with the horizon chosen below, to the project file.
    """
    _reset_mapping_widgets(wh)
    proposal = app_state.mapping_proposal(wh)
    label = {
        "project": "Table mapping — saved in the project",
        "guess": "Table mapping — guessed from names and types: check it, then confirm",
        "none": "Table mapping — choose the tables",
    }[proposal.source]
    with st.expander(label, expanded=proposal.source != "project", icon=":material/table_view:"):
        for problem in proposal.problems:
            st.warning(f"Guess: {problem}", icon=":material/help:")
        chosen: dict[str, str | None] = {}
        left, right = st.columns(2)
        for i, name in enumerate(MAPPING_FIELDS):
            with left if i % 2 == 0 else right:
                _field(wh, name, proposal, chosen)
        if proposal.source == "guess":
            _reasons(proposal, chosen)
        mapping, problems = _check(wh.url, wh, json.dumps(chosen, sort_keys=True))
        for problem in problems:
            st.error(f"Mapping: {problem}", icon=":material/error:")
        if mapping is not None:
            current = app_state.choices(wh)
            horizon = st.session_state.get("train_horizon") or current.horizon_days or 90
            is_saved = current.mapping == mapping and current.horizon_days == horizon
            st.button(
                "Saved in the project" if is_saved else "Confirm and save to the project",
                type="secondary" if is_saved else "primary",
                disabled=is_saved,
                key="train_map_save",
                on_click=_save_mapping,
                args=(mapping,),
                icon=":material/save:",
                help="Keeps the mapping and the horizon in sqltraits.toml for this warehouse: "
                "every page, `sqltraits train` and notebooks start from it.",
            )
    saved_now = st.session_state.pop("train_map_flash", None)
    if saved_now:
        st.success(saved_now, icon=":material/check_circle:")
    return mapping


def feature_spec_panel() -> FeatureSpec | None:
    """The feature-spec editor: your own aggregates and attributes beside the built-in set."""
    with st.expander("Your own features (feature spec)", expanded=False):
        spec_text = st.text_area(
            "Feature spec (TOML)",
            value="",
            height=200,
            placeholder=SPEC_EXAMPLE,
            key="train_feature_spec",
            persist_state="session",
            help="Aggregates over any event table and profile attributes, added to the "
            "built-in features (replace = true: instead of them). Empty: the built-in set.",
        )
        spec = parse_spec(spec_text)
        if spec is not None:
            st.caption(f"Adds {', '.join(spec.columns())}.")
    return spec


def parse_spec(text: str) -> FeatureSpec | None:
    """The spec typed in the editor, or None when it is empty (a bad one is a ConfigError)."""
    if not text.strip():
        return None
    try:
        return FeatureSpec.from_dict(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"feature spec: {exc}") from None


# ------------------------------------------------------------------ the result
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
    st.subheader(f"{card.name}: {card.kind} model · {title}")
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
                "Gini": fmt.figure(c.metrics.get("gini")),
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
