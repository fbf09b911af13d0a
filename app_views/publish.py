"""The Publish page's panels: the destination, the source, the verdicts and dry run, a publish
with its progress, the run history and the failed rows. The work is
:mod:`sqltraits_kit.publishing.sync`'s; a publish runs in the script's thread (the session's
warehouse connection is not thread-safe) and reports through the sync's ``progress`` callback.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

import app_state
from sqltraits_kit import formatting as fmt
from sqltraits_kit.access import Decision
from sqltraits_kit.errors import ConfigError
from sqltraits_kit.publishing import local
from sqltraits_kit.publishing.sync import (
    SyncProgress,
    SyncResult,
    make_client,
    resolve_source,
    sync,
)
from sqltraits_kit.settings import Settings
from sqltraits_kit.traits.traitset import ACCOUNT_IDENTIFIER, USER_IDENTIFIERS, TraitSet
from sqltraits_kit.warehouse import Warehouse
from sqltraits_kit.workflows.preview import default_identifier

REMOVE_LABELS = {"null": "set their traits to null (Segment's rule)", "keep": "leave them alone"}


def limit(value: float) -> float | None:
    """A rate limit as the number inputs hold it: 0 means none."""
    return float(value) or None


@dataclass
class Target:
    """Where a publish goes and whether this session may send there."""

    destination: Any
    access: Decision
    can_send: bool


@dataclass
class Source:
    """What to publish: the source, the sync options, and the sync key (None: nothing usable)."""

    source: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    sync_key: str | None = None


def destination_settings(settings: Settings, access: Decision) -> Target:
    """The destination picker and its Segment settings (write key, endpoint, rate limits)."""
    destinations = {d.name: d for d in local.publish_destinations(settings)}
    destination = destinations[
        st.selectbox(
            "Destination",
            list(destinations),
            format_func=lambda name: destinations[name].label,
            help="The Segment workspaces the operator configured in secrets.toml or the "
            "environment.",
            key="publish_destination",
            persist_state="session",
        )
    ]
    destination = local.resolve(destination)  # the local test server starts when chosen
    key = destination.write_key
    is_local = destination.name == local.LOCAL
    if is_local:
        st.info(
            f"Publishing to a test server on this machine ({destination.endpoint}): it accepts "
            "and dedupes like Segment's Tracking API, and nothing leaves this machine. After a "
            "publish, the page shows the traits Segment would now hold.",
            icon=":material/science:",
        )
    with st.expander("Segment settings", expanded=key is None):
        if is_local:
            st.markdown("Write key: generated for this app process only.")
        elif key is None:
            st.warning(
                f"No write key for {destination.label}: the operator adds `SEGMENT_WRITE_KEY` "
                "(or a destination's `write_key`) to `.streamlit/secrets.toml` or the "
                "environment. Checks and dry runs work without one."
            )
        else:
            st.markdown(f"Write key: `{key.masked()}`")
        where = destination.endpoint or f"Segment's {destination.region.upper()} endpoint"
        st.caption(
            f"Sends to {where}. Destinations, keys and endpoints are the operator's settings; "
            "see the README's *Deploying for a team*."
        )
        if destination.name != "production":
            st.caption(f"Sync state of its own: sync keys end in `@{destination.name}`.")
        left, right = st.columns(2)
        left.number_input(
            "Max requests/s (0 = no limit)",
            min_value=0.0,
            value=float(settings.max_requests_per_second),
            format="%g",
            key="publish_rps",
            persist_state="session",
        )
        right.number_input(
            "Max events/s (0 = no limit)",
            min_value=0.0,
            value=float(settings.max_events_per_second),
            format="%g",
            key="publish_eps",
            persist_state="session",
        )
    return Target(destination, access, bool(access) and key is not None)


def _trait_set_source(source: TraitSet, wh: Warehouse) -> TraitSet | None:
    # The threshold chosen on the Preview page for this trait set is the one in use.
    chosen = st.session_state.get("preview_thresholds", {}).get(source.name)
    threshold = f"drift threshold {fmt.figure(source.drift_threshold)}"
    if chosen is not None and chosen != source.drift_threshold:
        threshold = (
            f"drift threshold {fmt.figure(chosen)}, set on the Preview page (the trait set "
            f"says {fmt.figure(source.drift_threshold)})"
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
        return None
    return source


def _table_options(wh: Warehouse, table: str) -> dict[str, Any] | None:
    """The calls and the identifier of a bare table; None when the identifier is not one
    Segment knows (a blocking error: it would be sent as a user id of the wrong kind)."""
    columns = list(wh.table(table).columns)
    left, right = st.columns(2)
    kind = left.radio(
        "Calls", ["identify", "group"], horizontal=True, key="publish_kind", persist_state="session"
    )
    id_column = right.selectbox(
        "Identifier column",
        columns,
        index=columns.index(default_identifier(columns, kind=kind)),
        key="publish_id_column",
        persist_state="session",
    )
    allowed = (ACCOUNT_IDENTIFIER,) if kind == "group" else USER_IDENTIFIERS
    if id_column not in allowed:
        st.error(
            f"`{id_column}` is not a Segment identifier ({', '.join(allowed)} for "
            f"{kind} calls): a table is published under its own column names. Save it as a "
            "trait set on the Preview page to send this column as the user id.",
            icon=":material/block:",
        )
        app_state.page_link("pages/preview.py", "Create a trait set", ":material/edit:")
        return None
    return {"kind": kind, "id_column": id_column}


def _carry_from_preview(wh: Warehouse, files: list[str]) -> None:
    """The source last chosen on the Preview becomes this page's choice, once per change."""
    carried = st.session_state.get("carried_source")
    if carried is None or carried == st.session_state.get("publish_carried"):
        return
    st.session_state["publish_carried"] = carried
    if carried[0] == "Trait set" and carried[1] in files:
        st.session_state["publish_source_kind"] = "Trait set"
        st.session_state["publish_traitset"] = carried[1]
    elif carried[0] == "Table":
        st.session_state["publish_source_kind"] = "Table"
        st.session_state["publish_table"] = carried[1]
        st.session_state["publish_id_column"] = carried[2]
        if carried[1] not in app_state.output_tables(wh):  # chosen as "any table" there too
            st.session_state["publish_any_table"] = True


def pick_source(wh: Warehouse, target: Target) -> Source:
    """A trait set in use, or an output table (any table for a publisher who asks) with its
    calls and identifier; then what happens to profiles that left, and the sync key. The
    source chosen on the Preview comes first."""
    access = target.access
    sets = {ts.path.name: ts for ts in app_state.trait_sets(wh) if ts.path is not None}
    files = list(sets)
    _carry_from_preview(wh, files)
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
    picked = Source()
    with app_state.user_errors():
        if kind_of_source == "Trait set" and files:
            name = st.selectbox("Trait set", files, key="publish_traitset", persist_state="session")
            picked.source = _trait_set_source(sets.get(name) or sets[files[0]], wh)
        elif kind_of_source == "Table" and tables:
            if st.session_state.get("publish_table") not in tables:
                st.session_state.pop("publish_table", None)
            picked.source = st.selectbox(
                "Table", tables, key="publish_table", persist_state="session"
            )
            options = _table_options(wh, picked.source)
            if options is None:
                picked.source = None
            else:
                picked.options = options
        elif kind_of_source == "Trait set":
            st.info(
                "No trait set for this warehouse yet: save one from an output table on the "
                "Preview page, or publish a table."
            )
            app_state.page_link("pages/preview.py", "Create a trait set", ":material/edit:")
        else:
            st.info(
                "No output table to publish yet: the Score page writes one."
                + ("" if any_table and access else " Other tables: *Any table (advanced)*.")
            )
            app_state.page_link("pages/score.py", "Score profiles", ":material/target:")
        if picked.source is not None:
            source = picked.source
            default_remove = source.on_remove if isinstance(source, TraitSet) else "null"
            picked.options["on_remove"] = st.radio(
                "Profiles that left the result",
                ["null", "keep"],
                index=["null", "keep"].index(default_remove),
                format_func=REMOVE_LABELS.__getitem__,
                horizontal=True,
                key="publish_on_remove",
                persist_state="session",
            )
            base_key = resolve_source(wh, source, **picked.options).sync_key
            picked.sync_key = target.destination.sync_key(base_key)
            picked.options["sync_key"] = picked.sync_key
            st.caption(
                f"Sync key `{picked.sync_key}`: the published state this source is diffed against."
            )
    return picked


def run_sync(
    wh: Warehouse,
    target: Target,
    picked: Source,
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
        if not target.access:  # the buttons are disabled too; this holds if a click gets through
            raise ConfigError(f"not published: {target.access.reason}")
        destination = target.destination
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
                picked.source,
                client=client,
                allow_drift=allow_drift,
                allow_invalid=allow_invalid,
                only_failed=only_failed,
                progress=progress,
                **picked.options,
            )
        finally:
            client.close()
    return None
