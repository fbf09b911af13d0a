"""The trait-set editor on the Preview page: which columns become which traits, decimals,
tolerance, tiers and flags, on-remove and the drift threshold; the diff against the file; save.

The Preview shows the edited trait set as it would be published, before anything is saved. The
rules (the draft from an output table, the one-line tier and flag rules, the round-tripping
save) are :mod:`sqltraits_kit.traits.traitset.editing`'s.
"""

from __future__ import annotations

import re
from pathlib import Path

import streamlit as st

import app_state
from sqltraits_kit.errors import SqlTraitsError
from sqltraits_kit.traits.traitset import TraitSet
from sqltraits_kit.traits.traitset.editing import (
    TraitRow,
    build,
    derived_rule,
    file_name,
    parse_derived,
    rows_of,
    text_diff,
)
from sqltraits_kit.warehouse import Warehouse
from sqltraits_kit.workflows.catalog import TRAIT_SET_FOLDER

DECIMALS = ["as is", 0, 1, 2, 3, 4, 5, 6]
DERIVED_TYPES = ["tiers", "flag", "quantiles"]
RULE_HELP = (
    "tiers: thresholds -> labels ('0.3, 0.7 -> low, medium, high'); flag: an operator and a "
    "number ('>= 0.7'); quantiles: the number of bins ('10')."
)


def _slug(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_")


def _derived_key(slug: str) -> str:
    return f"preview_edit_{slug}_derived"


def _add_derived(slug: str, column: str) -> None:
    st.session_state[_derived_key(slug)].append(
        {"name": "", "type": "tiers", "column": column, "rule": ""}
    )


def _remove_derived(slug: str, index: int) -> None:
    rows = st.session_state[_derived_key(slug)]
    del rows[index]
    # the widgets of the rows after it move up one place: their keys start over
    for key in [k for k in st.session_state if str(k).startswith(f"preview_edit_{slug}_d")]:
        if key != _derived_key(slug):
            del st.session_state[key]


def _row(slug: str, row: TraitRow) -> TraitRow:
    key = f"preview_edit_{slug}_{_slug(row.column)}"
    publish, name, decimals, tolerance, relative = st.columns(
        [2, 3, 2, 2, 2], vertical_alignment="bottom"
    )
    on = publish.checkbox(row.column, value=row.publish, key=f"{key}_on")
    trait = name.text_input(
        f"Trait name for {row.column}",
        value=row.trait,
        key=f"{key}_trait",
        label_visibility="collapsed",
        disabled=not on,
    )
    places = decimals.selectbox(
        f"Decimals of {row.column}",
        DECIMALS,
        index=DECIMALS.index(row.decimals) if row.decimals in DECIMALS else 0,
        key=f"{key}_decimals",
        label_visibility="collapsed",
        disabled=not on,
        format_func=lambda d: d if d == "as is" else f"{d} decimals",
    )
    change = tolerance.number_input(
        f"Tolerance of {row.column}",
        min_value=0.0,
        value=float(row.tolerance),
        step=0.01,
        format="%g",
        key=f"{key}_tolerance",
        label_visibility="collapsed",
        disabled=not on,
    )
    percent = relative.number_input(
        f"Relative tolerance of {row.column} (%)",
        min_value=0.0,
        max_value=99.0,
        value=round(float(row.relative) * 100, 6),
        step=1.0,
        format="%g",
        key=f"{key}_relative",
        label_visibility="collapsed",
        disabled=not on,
    )
    return TraitRow(
        column=row.column,
        publish=on,
        trait=trait,
        decimals=None if places == "as is" else int(places),
        tolerance=float(change),
        relative=float(percent) / 100,
    )


def _derived_rows(slug: str, columns: list[str]) -> list:
    rows = st.session_state[_derived_key(slug)]
    out = []
    for i, item in enumerate(rows):
        name, kind, column, rule, remove = st.columns([3, 2, 3, 4, 1], vertical_alignment="bottom")
        key = f"preview_edit_{slug}_d{i}"
        item["name"] = name.text_input("Name", item["name"], key=f"{key}_name")
        item["type"] = kind.selectbox(
            "Type", DERIVED_TYPES, DERIVED_TYPES.index(item["type"]), key=f"{key}_type"
        )
        item["column"] = column.selectbox(
            "From column",
            columns,
            columns.index(item["column"]) if item["column"] in columns else 0,
            key=f"{key}_column",
        )
        item["rule"] = rule.text_input("Rule", item["rule"], key=f"{key}_rule", help=RULE_HELP)
        remove.button(
            "",
            icon=":material/delete:",
            key=f"{key}_remove",
            on_click=_remove_derived,
            args=(slug, i),
            help="Remove this derived trait",
        )
        out.append(parse_derived(item["name"], item["type"], item["column"], item["rule"]))
    return out


def _save(wh: Warehouse, trait_set: TraitSet, path: Path) -> None:
    """Button callback: write the file (comments kept), record it in the project, and show it
    as the Preview's trait set."""
    try:
        trait_set.dump(path)
        in_use = [
            ts.path.relative_to(app_state.project_dir()).as_posix()
            for ts in app_state.trait_sets(wh)
            if ts.path is not None and ts.path.is_relative_to(app_state.project_dir())
        ]
        listed = list(dict.fromkeys([*in_use, f"{TRAIT_SET_FOLDER}/{path.name}"]))
        app_state.project().save(wh.url, trait_sets=listed)
    except (SqlTraitsError, OSError) as exc:
        st.session_state["preview_edit_flash"] = ("error", f"Not saved: {exc}")
        return
    st.session_state["preview_mode"] = "Trait set"
    st.session_state["preview_traitset"] = path.name
    st.session_state["preview_edit_flash"] = (
        "success",
        f"Saved `{path}` and recorded it in the project for this warehouse: the Publish page "
        f"and `sqltraits run {TRAIT_SET_FOLDER}/{path.name}` use it as it is.",
    )


def flash() -> None:
    message = st.session_state.pop("preview_edit_flash", None)
    if message is not None:
        getattr(st, message[0])(message[1])


def editor(wh: Warehouse, base: TraitSet, columns: list[str], *, new: bool) -> TraitSet:
    """The editor over ``base`` (a draft from an output table when ``new``, else a saved trait
    set); returns the edited trait set, or ``base`` while the edit does not hold."""
    slug = _slug(f"{'new' if new else 'file'}_{base.table or base.name}_{base.id_column}")
    st.session_state.setdefault(
        _derived_key(slug),
        [
            {"name": d.name, "type": d.type, "column": d.column, "rule": derived_rule(d)}
            for d in base.derived
        ],
    )
    label = "Save these traits as a trait set" if new else "Edit this trait set"
    with st.expander(label, expanded=new, icon=":material/edit:"):
        top = st.columns([3, 2, 2, 2])
        name = top[0].text_input("Trait set name", base.name, key=f"preview_edit_{slug}_name")
        on_remove = top[1].selectbox(
            "Profiles that leave",
            ["null", "keep"],
            ["null", "keep"].index(base.on_remove),
            key=f"preview_edit_{slug}_on_remove",
            format_func={"null": "set traits to null", "keep": "keep their traits"}.get,
        )
        threshold = top[2].number_input(
            "Drift threshold (PSI)",
            min_value=0.01,
            value=float(base.drift_threshold),
            step=0.05,
            format="%g",
            key=f"preview_edit_{slug}_drift",
        )
        top[3].caption(
            f"{base.kind} traits ({base.message_type} calls), identifier `{base.id_column}` "
            f"sent as `{base.identifier}`"
        )
        st.caption(
            "Publish · trait name · decimals · tolerance · relative tolerance in % of the "
            "published value (a smaller change is not re-sent; the larger bound wins)"
        )
        rows = [_row(slug, row) for row in rows_of(base, columns)]
        st.caption("Derived traits: tiers, flags and quantiles, from a column before rounding")
        trait_columns = [r.column for r in rows]
        try:
            derived = _derived_rows(slug, trait_columns)
            edited = build(
                base,
                rows=rows,
                derived=derived,
                name=name.strip() or base.name,
                on_remove=on_remove,
                drift_threshold=float(threshold),
            )
        except SqlTraitsError as exc:  # an edit in progress: said, not alarmed
            edited = None
            st.warning(f"Not saved yet: {exc}", icon=":material/edit_note:")
        st.button(
            "Add a derived trait",
            key=f"preview_edit_{slug}_add",
            on_click=_add_derived,
            args=(slug, trait_columns[0] if trait_columns else ""),
            icon=":material/add:",
        )
        if edited is None:
            return base
        path = (
            app_state.traitsets_dir() / file_name(edited)
            if new or base.path is None
            else Path(base.path)
        )
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        diff = text_diff(old, edited.dumps_over(old), path=f"{TRAIT_SET_FOLDER}/{path.name}")
        if new and old:
            st.warning(f"`{path.name}` exists: saving changes it as the diff shows.")
        if diff:
            st.code(diff, language="diff")
        st.button(
            f"Save {TRAIT_SET_FOLDER}/{path.name}" if diff else "Saved: no change",
            type="primary",
            disabled=not diff,
            key=f"preview_edit_{slug}_save",
            on_click=_save,
            args=(wh, edited, path),
            icon=":material/save:",
        )
    return edited
