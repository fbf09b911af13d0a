"""The Score page's panels: which model versions, as of when, into which table; what the trait
sets reading that table will find there; the run with its progress; the result and the runs."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pandas as pd
import streamlit as st

import app_state
from sqltraits_kit import formatting as fmt
from sqltraits_kit.errors import SqlTraitsError
from sqltraits_kit.modelling.features import TableMapping
from sqltraits_kit.modelling.registry import ModelCard, Registry
from sqltraits_kit.traits.output import METADATA_COLUMNS, is_output_table, runs
from sqltraits_kit.traits.scoring import (
    check_distinct_columns,
    default_as_of,
    score,
    trait_columns,
)
from sqltraits_kit.traits.traitset import TraitSet
from sqltraits_kit.warehouse import Warehouse
from sqltraits_kit.workflows.catalog import missing_columns, model_names, renamed_columns
from sqltraits_kit.workflows.defaults import (
    SCORE_IDENTIFIERS,
    default_output_table,
    default_score_identifier,
    models_by_warehouse,
)

PATHS = {"warehouse": "in the warehouse", "streamed": "streamed"}


@st.cache_data(ttl=300, show_spinner="Finding the latest data in the warehouse…")
def latest_as_of(url: str, _wh: Warehouse, mapping: str) -> dt.date:
    return default_as_of(_wh, TableMapping.from_dict(json.loads(mapping)))


def usable_cards(wh: Warehouse, registry: Registry) -> list[ModelCard]:
    """The saved models of this warehouse; those of another one only when the user asks
    (and the page says so). Stops with a way forward when there is none."""
    here, elsewhere = models_by_warehouse(registry.list(), wh)
    other = False
    if elsewhere:
        other = st.toggle(
            f"Also list {len(elsewhere)} model(s) trained on another warehouse",
            key="score_other_warehouses",
            persist_state="session",
            help="Their mapping names tables this warehouse does not have: scoring with one "
            "is a deliberate choice.",
        )
    if other:
        st.warning(
            "Models from another warehouse are listed: "
            + ", ".join(f"{c.ref} (trained on `{c.warehouse or 'unknown'}`)" for c in elsewhere),
            icon=":material/warning:",
        )
        return here + elsewhere
    if not here:
        settings = app_state.settings()
        st.warning(
            f"No model trained on this warehouse in `{settings.models_dir}` yet: train and save "
            "one first."
        )
        app_state.page_link("pages/train.py", "Train a model", ":material/model_training:")
        st.stop()
    return here


def pick_models(registry: Registry, cards: list[ModelCard], sets: list[TraitSet]) -> list[Any]:
    """The models to score (by default the ones the first trait set in use names) and a
    version of each; returns the chosen versions' cards."""
    by_name: dict[str, dict[int, Any]] = {}
    for card in cards:
        by_name.setdefault(card.name, {})[card.version] = card
    names = list(by_name)
    wanted = model_names(sets[0]) if sets else []
    chosen = st.multiselect(
        "Models",
        names,
        default=[n for n in wanted if n in by_name] or names[:1],
        key="score_models",
        persist_state="session",
        help="Several models are joined on the profile into one output table."
        + (f" Trait set {sets[0].name!r} expects {', '.join(wanted)}." if wanted else ""),
    )
    picked = []
    for column, name in zip(st.columns(max(len(chosen), 1)), chosen, strict=False):
        versions = sorted(by_name[name], reverse=True)
        active = registry.active(name)
        default = versions.index(active.version) if active and active.version in versions else 0

        def label(version: int, name: str = name, active=active) -> str:
            card = by_name[name][version]
            mark = " · active" if active and active.version == version else ""
            return f"v{version} · {card.kind} · {card.estimator} · cutoff {card.cutoff}{mark}"

        version = column.selectbox(
            f"{name} version",
            versions,
            index=default,
            format_func=label,
            key=f"score_v_{name}",
            persist_state="session",
        )
        picked.append(by_name[name][version])
    return picked


def run_options(
    wh: Warehouse, picked: list[Any], sets: list[TraitSet]
) -> tuple[dt.date, str, str, str]:
    """(as of, output table, where to score, identifier column); the defaults come from the
    project, the trait sets in use and what the warehouse holds."""
    if picked:
        latest = latest_as_of(wh.url, wh, json.dumps(picked[0].mapping, sort_keys=True))
    else:
        latest = dt.date.today()
    left, right = st.columns(2)
    as_of = left.date_input(
        "As of",
        value=latest,
        key="score_as_of",
        persist_state="session",
        help=f"Profiles and events before this date count. Latest data: the day before {latest}.",
    )
    suggested = default_output_table(
        wh, choices=app_state.choices(wh), trait_sets=sets, models=[c.name for c in picked]
    )
    table = right.text_input(
        "Output table",
        value=suggested,
        key="score_table",
        persist_state="session",
        help="The project's output table for this warehouse when one was used before; a new "
        "name creates the table.",
    )
    with st.expander("Options"):
        method = st.radio(
            "Where to score",
            ["auto", "warehouse", "streamed"],
            horizontal=True,
            key="score_method",
            persist_state="session",
            help="auto: in the warehouse when the model translates to SQL and matches "
            "scikit-learn within 1e-9 on a sample, else streamed.",
        )
        identifier = default_score_identifier(wh, table.strip())
        id_column = st.selectbox(
            "Identifier column",
            SCORE_IDENTIFIERS,
            index=SCORE_IDENTIFIERS.index(identifier),
            key="score_id_column",
            persist_state="session",
            help="The profile id is written under Segment's name for it, so a trait set sends it "
            "as is: user_id for users, group_id for accounts.",
        )
    return as_of, table.strip(), method, id_column


def check_target(wh: Warehouse, target: str, picked: list[Any], sets: list[TraitSet]) -> bool:
    """Whether scoring into ``target`` is refused (an input table, or two models writing one
    column), and what the trait sets reading it will find there: the default one warns, the
    others are a note."""
    blocked = bool(target) and wh.has_table(target) and not is_output_table(wh, target)
    if blocked:  # score() swaps the table in whole: an input table would be gone
        st.error(
            f"`{target}` already exists and is not an output table (it has no "
            f"{', '.join(METADATA_COLUMNS)} columns): scoring would replace it. "
            "Choose another name.",
            icon=":material/error:",
        )
    try:  # two models of one kind and horizon would write the same column
        check_distinct_columns(picked)
    except SqlTraitsError as exc:
        st.error(str(exc), icon=":material/error:")
        blocked = True
    written = {column for card in picked for column in trait_columns(card)}
    notes = []
    for ts in sets:
        if ts.table != target or not ts.traits:
            continue
        missing = missing_columns(ts, written=written)
        if not missing:
            notes.append(f"**{ts.name}** :material/check:")
            continue
        models = ", ".join(model_names(ts))
        notes.append(f"**{ts.name}** needs {', '.join(missing)} (its models: {models})")
        if ts is sets[0]:
            renamed = "".join(f"\n\n- {note}" for note in renamed_columns(missing, columns=written))
            st.warning(
                f"Trait set {ts.name!r} reads {', '.join(missing)} from `{target}`, which no "
                f"chosen model writes: add {models}, or its checks fail.{renamed}",
                icon=":material/warning:",
            )
    if notes:
        st.caption(f"Trait sets reading `{target}`: " + " · ".join(notes))
    return blocked


def run_score(wh: Warehouse, registry: Registry, refs: list[str], **options: Any) -> None:
    """Score with a live status and progress bar; the result goes to the session."""
    st.session_state.pop("score_result", None)
    with st.status(f"Scoring with {', '.join(refs)}…", expanded=True) as status:
        try:
            result = score(
                wh, models=refs, registry=registry, progress=app_state.progress_bar(), **options
            )
        except SqlTraitsError:
            status.update(label="Scoring failed: nothing was written", state="error")
            raise
        status.update(
            label=f"Scored {result.rows:,} profiles in {fmt.seconds(result.seconds)}",
            state="complete",
            expanded=False,
        )
    st.session_state["score_result"] = result.to_dict()
    # The project remembers where this warehouse's scores go: the page's next default.
    app_state.project().save(wh.url, output_table=result.table)


def _why(model: dict[str, Any]) -> str:
    """The scoring path in a few words; the library's full reason is in the details."""
    reason = model["reason"]
    if model["path"] == "warehouse":  # the BG/NBD pair is checked against numpy
        return f"SQL checked against {'numpy' if 'numpy' in reason else 'scikit-learn'}"
    if reason.startswith("no SQL translation"):
        return "no SQL translation for this estimator"
    return reason.split(";")[0]


def show_result(wh: Warehouse, done: dict[str, Any]) -> None:
    """The last scoring run of this session: counts, each model's path, timings, the runs."""
    st.success(
        f"Wrote {fmt.count(done['rows'])} rows to `{done['table']}` (run `{done['run_id']}`)."
    )
    a, b, c = st.columns(3)
    a.metric("Profiles scored", fmt.count(done["rows"]))
    b.metric("Time", fmt.seconds(done["seconds"]))
    c.metric("As of", fmt.instant(done["as_of"]))
    models = [
        {
            "model": m["ref"],
            "columns": ", ".join(m["columns"]),
            "path": PATHS.get(m["path"], m["path"]),
            "why": _why(m),
            "max |diff|": fmt.figure(m["parity_max_diff"], digits=2),
            "time": fmt.seconds(m["seconds"]),
        }
        for m in done["models"]
    ]
    st.dataframe(
        pd.DataFrame(models),
        hide_index=True,
        key="score_models_table",
        # the BG/NBD pair writes four columns: cut them short rather than scroll sideways
        column_config={
            "columns": st.column_config.TextColumn(width="medium"),
            "max |diff|": st.column_config.TextColumn(
                help="The parity check: the largest difference between the SQL and the fitted "
                "model's own predictions over every profile"
            ),
        },
    )
    with st.expander("Each model's path in detail"):
        for m in done["models"]:
            st.caption(f"{m['ref']}: {m['reason']}")
    steps = " · ".join(f"{k} {fmt.seconds(v)}" for k, v in done["timings"].items())
    swap = "atomic swap" if done["atomic"] else "swap (not atomic on this engine)"
    st.caption(f"Timing: {steps} · {swap} · history in `{done['history_table']}`")
    for note in done["notes"]:
        st.warning(note)
    app_state.page_link(
        "pages/preview.py",
        "Preview the traits, then save them as a trait set",
        ":material/bar_chart:",
    )
    history = runs(wh, done["table"]) if done["history_table"] else []
    if history:
        st.subheader("Runs")
        st.dataframe(_runs_frame(history), hide_index=True, key="score_runs")


def _runs_frame(history: list) -> pd.DataFrame:
    """The output table's scoring runs as a person reads them: models as name@version."""
    rows = []
    for run in history:
        r = run.to_dict()
        names = str(r.get("model_name") or "").split(",")
        versions = str(r.get("model_version") or "").split(",")
        models = [f"{n}@{v}" if v else n for n, v in zip(names, versions, strict=False) if n]
        rows.append(
            {
                "run": r.get("run_id"),
                "scored at": fmt.instant(r.get("scored_at")),
                "models": ", ".join(models) or fmt.DASH,
                "rows": fmt.count(r.get("rows")),
                "current": bool(r.get("current")),
            }
        )
    return pd.DataFrame(rows)
