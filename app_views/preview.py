"""The Preview page's panels: the source picker, the contract, distributions, drift, sample
payloads, the CSV and the SQL Trait, each from one cached call of
:mod:`sqltraits_kit.workflows.preview`."""

from __future__ import annotations

import io

import streamlit as st

import app_state
from app_views import traitset_editor as editor
from sqltraits_kit import formatting as fmt
from sqltraits_kit.traits.contract import ContractReport, validate_trait_set
from sqltraits_kit.traits.traitset import TraitSet
from sqltraits_kit.traits.traitset.editing import draft
from sqltraits_kit.warehouse import Warehouse
from sqltraits_kit.workflows.catalog import missing_columns, renamed_columns
from sqltraits_kit.workflows.preview import (
    Distributions,
    DriftCheck,
    SamplePayloads,
    data_version,
    default_identifier,
    distributions,
    drift_check,
    export_csv,
    identifier_kind,
    load_trait_set_or_table,
    sample_payloads,
    segment_sql,
)
from sqltraits_kit.workflows.training_setup import needed_models

TTL = 600


def _trait_set(spec: str, path: str) -> TraitSet:
    return TraitSet.loads(spec, path=path or None)


# One cached call per panel, so each panel shows as soon as its queries are done. The trait set
# travels as its TOML text: a plain, hashable key. ``version`` changes with a new scoring run, a
# rollback or a publish; the TTL covers what it cannot see (the tables a query reads).
@st.cache_data(ttl=TTL, show_spinner=False)
def cached_contract(url: str, _wh: Warehouse, spec: str, path: str, version: str) -> ContractReport:
    return validate_trait_set(_wh, _trait_set(spec, path))


@st.cache_data(ttl=TTL, show_spinner=False)
def cached_distributions(
    url: str, _wh: Warehouse, spec: str, path: str, version: str, bins: int
) -> Distributions:
    return distributions(_wh, _trait_set(spec, path), bins=bins)


# Computed against the trait set's own threshold; the slider only re-judges it (no query).
@st.cache_data(ttl=TTL, show_spinner=False)
def cached_drift(
    url: str, _wh: Warehouse, spec: str, path: str, version: str, sync_key: str
) -> DriftCheck:
    return drift_check(_wh, _trait_set(spec, path), sync_key=sync_key)


def publish_sync_key(trait_set: TraitSet) -> str:
    """The published state a publish of ``trait_set`` from the Publish page is diffed against
    (its destination's: ``churn`` for production, ``churn@local`` for the local test server):
    the Preview's drift is measured against the same one."""
    from sqltraits_kit.publishing import local

    destinations = {d.name: d for d in local.publish_destinations(app_state.settings())}
    chosen = destinations.get(st.session_state.get("publish_destination"))
    destination = chosen or next(iter(destinations.values()), None)
    return destination.sync_key(trait_set.name) if destination else trait_set.name


@st.cache_data(ttl=TTL, show_spinner="Building sample payloads…")
def cached_sample(
    url: str, _wh: Warehouse, spec: str, path: str, version: str, size: int
) -> SamplePayloads:
    return sample_payloads(_wh, _trait_set(spec, path), size=size)


@st.cache_data(ttl=TTL, show_spinner="Writing the SQL Trait…")
def cached_sql(url: str, _wh: Warehouse, spec: str, path: str, version: str, dialect: str) -> str:
    return segment_sql(_wh, _trait_set(spec, path), dialect=dialect)


@st.cache_data(ttl=TTL, show_spinner="Writing the CSV from the warehouse…")
def cached_csv(url: str, _wh: Warehouse, spec: str, path: str, version: str, limit: int) -> bytes:
    buffer = io.BytesIO()
    export_csv(_wh, _trait_set(spec, path), buffer, limit=limit)
    return buffer.getvalue()


@st.cache_data(ttl=60, show_spinner=False)
def cached_columns(url: str, _wh: Warehouse, table: str) -> list[str]:
    return list(_wh.table(table).columns)


def cache_key(wh: Warehouse, trait_set: TraitSet) -> tuple:
    """What every cached panel is keyed by: the warehouse, the trait set and the data version."""
    spec, path = trait_set.dumps(), str(trait_set.path or "")
    version = data_version(wh, trait_set, sync_key=publish_sync_key(trait_set))
    return (wh.url, wh, spec, path, version)


def empty_state(what: str) -> None:
    st.info(f"{what} Score profiles first: the Score page writes the output table.")
    app_state.page_link("pages/score.py", "Score profiles", ":material/target:")
    st.stop()


def _pick_file(wh: Warehouse, sets: list[TraitSet], name_col, id_col) -> TraitSet:
    if not sets:
        st.info(
            "No trait set for this warehouse yet: choose *Output table*, then save its traits "
            "as a trait set (names, rounding, tolerance, tiers).",
            icon=":material/info:",
        )
        st.stop()
    files = [ts.path.name for ts in sets if ts.path is not None]
    chosen = name_col.selectbox("Trait set", files, key="preview_traitset", persist_state="session")
    trait_set = sets[files.index(chosen)] if chosen in files else sets[0]
    id_col.caption(trait_set.description or f"Trait set `{trait_set.name}`")
    id_col.caption(
        f"{trait_set.kind} traits from {trait_set.source_label}, identifier "
        f"`{trait_set.identifier}`"
    )
    st.session_state["carried_source"] = ("Trait set", chosen)
    return trait_set


def _pick_table(wh: Warehouse, name_col, id_col) -> TraitSet:
    any_table = name_col.toggle(
        "Any table (advanced)",
        key="preview_any_table",
        persist_state="session",
        help="Lists every table of the warehouse, not only the output tables the Score page "
        "writes. Input tables (users with e-mails, ...) are rarely traits.",
    )
    tables = app_state.output_tables(wh, any_table=any_table)
    if not tables:
        empty_state("This warehouse has no output table to preview yet.")
    saved = app_state.choices(wh).output_table
    default = tables.index(saved) if saved in tables else 0
    table = name_col.selectbox(
        "Output table", tables, index=default, key="preview_table", persist_state="session"
    )
    columns = cached_columns(wh.url, wh, table)
    id_column = id_col.selectbox(
        "Identifier column",
        columns,
        index=columns.index(default_identifier(columns)),
        key="preview_id_column",
        persist_state="session",
        help="group_id makes them account traits (group calls); any other: user traits.",
    )
    st.session_state["carried_source"] = ("Table", table, id_column)
    return load_trait_set_or_table(table, id_column=id_column, kind=identifier_kind(id_column))


def pick_trait_set(wh: Warehouse) -> TraitSet:
    """A trait set in use on this warehouse, or an output table with its identifier; stops on
    an empty state. The choice is carried to the Publish page."""
    sets = app_state.trait_sets(wh)
    pick, name_col, id_col = st.columns([1, 2, 2])
    mode = pick.radio(
        "Source",
        ["Trait set", "Output table"],
        index=0 if sets else 1,
        key="preview_mode",
        persist_state="session",
    )
    if mode == "Trait set":
        trait_set = _pick_file(wh, sets, name_col, id_col)
    else:
        trait_set = _pick_table(wh, name_col, id_col)
    if trait_set.table is not None and not wh.has_table(trait_set.table):
        empty_state(
            f"The table `{trait_set.table}` that trait set **{trait_set.name}** reads does not "
            "exist in this warehouse yet."
        )
    return trait_set


def missing_columns_state(wh: Warehouse, trait_set: TraitSet) -> None:
    """A trait set reading columns its table lacks: which models write them, and the pages
    that fix it (not a raw 'column not found'); stops the page."""
    if trait_set.table is None:
        return
    columns = cached_columns(wh.url, wh, trait_set.table)
    missing = missing_columns(trait_set, written=columns)
    if not missing:
        return
    writers = [n.name for n in needed_models(trait_set, []) if set(n.columns) & set(missing)]
    by = f" Written by: {', '.join(writers)}." if writers else ""
    renamed = "".join(f"\n\n- {note}" for note in renamed_columns(missing, columns=columns))
    st.warning(
        f"Trait set **{trait_set.name}** reads {', '.join(missing)}, which `{trait_set.table}` "
        f"does not have.{by} Train what the trait set needs (the Train page sets each model up), "
        f"score again, or untick those traits in the editor above.{renamed}",
        icon=":material/warning:",
    )
    app_state.page_link("pages/train.py", "Train the models it needs", ":material/model_training:")
    app_state.page_link("pages/score.py", "Score profiles", ":material/target:")
    st.stop()


def edit(wh: Warehouse, trait_set: TraitSet) -> TraitSet:
    """The editor: over a saved trait set (what the panels then preview, unsaved), or a new
    one drafted from the output table (saved, it becomes the Preview's trait set)."""
    editor.flash()
    if trait_set.table is None:  # a query: edited in its file
        return trait_set
    columns = cached_columns(wh.url, wh, trait_set.table)
    if trait_set.path is not None:
        return editor.editor(wh, trait_set, columns, new=False)
    base = draft(wh, trait_set.table, id_column=trait_set.id_column, kind=trait_set.kind)
    editor.editor(wh, base, columns, new=True)
    return trait_set


def controls(trait_set: TraitSet) -> tuple[float, int, int]:
    """(the drift threshold in use, histogram bins, sample profiles).

    The threshold override persists per trait set, and the Publish step reads the one in use.
    """
    thresholds = st.session_state.setdefault("preview_thresholds", {})
    left, right = st.columns([2, 3])
    threshold = left.slider(
        "Drift threshold (PSI)",
        min_value=0.01,
        max_value=2.0,
        value=float(thresholds.get(trait_set.name, trait_set.drift_threshold)),
        step=0.01,
        key=f"preview_threshold__{trait_set.name}",
        help=f"The trait set says {fmt.figure(trait_set.drift_threshold)}. Above it a trait has "
        "shifted enough that the Publish step asks for confirmation. Rule of thumb: < 0.1 stable, "
        "0.1-0.2 moderate, > 0.2 a real shift.",
    )
    thresholds[trait_set.name] = threshold
    st.session_state["drift_threshold"] = threshold
    st.session_state["preview_trait_set"] = trait_set.name
    with right.expander("Options"):
        bins = st.slider(
            "Histogram bins", 10, 60, 30, step=5, key="preview_bins", persist_state="session"
        )
        sample_size = st.slider(
            "Sample profiles", 5, 100, 20, step=5, key="preview_sample", persist_state="session"
        )
        st.toggle(
            "Histograms on a log scale",
            key="preview_log_scale",
            persist_state="session",
            help="For skewed traits (lifetime value): the long tail's small bars become visible.",
        )
    return threshold, bins, sample_size
