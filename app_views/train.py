"""The Train page's panels: what the trait sets in use need (the guided path), the table mapping
(saved in the project, else guessed with its reasons, then confirmed), the model's options, the
run, its result and the saved versions of this warehouse.

The rules (which columns fit a field, whether a mapping is usable, which models a trait set
needs, how a number reads) are :mod:`sqltraits_kit.workflows.training_setup`'s and
:mod:`sqltraits_kit.formatting`'s.
"""

from __future__ import annotations

import json
import tomllib

import streamlit as st

import app_state
from sqltraits_kit.errors import ConfigError
from sqltraits_kit.modelling.feature_spec import FeatureSpec
from sqltraits_kit.modelling.features import TableMapping
from sqltraits_kit.modelling.registry import ModelCard
from sqltraits_kit.modelling.training import default_cutoff
from sqltraits_kit.warehouse import Warehouse
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


#: What a model of each kind is called in a sentence.
KIND_NAMES = {
    "churn": "a churn model",
    "ltv": "an LTV model",
    "btyd": "the BG/NBD + Gamma-Gamma pair",
}


def _models(n: int) -> str:
    return f"{n} model" if n == 1 else f"{n} models"


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
        f"Trait set **{chosen.name}** needs {_models(len(needs))}; {len(todo)} to train. "
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
        why = (
            f"writes {', '.join(need.columns)}"
            if need.columns
            else "named in the trait set's [model], though none of its traits reads it"
        )
        if need.saved is not None and need.missing:
            why = f"{need.saved.ref} does not write {', '.join(need.missing)}"
        horizon = f", horizon {need.horizon_days} days" if need.horizon_days else ""
        right.caption(f"**{need.name}**: {KIND_NAMES.get(need.kind, need.kind)}{horizon}; {why}.")
        for note in need.renamed:  # training again would not help: the trait set needs an edit
            st.warning(
                f"Trait set **{chosen.name}** reads {note}. Edit it on the Preview page.",
                icon=":material/warning:",
            )
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
