"""Score: every profile with saved model versions, as of a date, into the output table."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

import app_state
from sqltraits_kit.errors import SqlTraitsError
from sqltraits_kit.features import TableMapping
from sqltraits_kit.output import runs
from sqltraits_kit.registry import Registry
from sqltraits_kit.scoring import DEFAULT_OUTPUT_TABLE, default_as_of, score
from sqltraits_kit.warehouse import Warehouse

PATHS = {"warehouse": "in the warehouse", "streamed": "streamed"}


@st.cache_data(ttl=300, show_spinner=False)
def latest_as_of(url: str, _wh: Warehouse, mapping: str) -> dt.date:
    return default_as_of(_wh, TableMapping.from_dict(json.loads(mapping)))


def link(page: str, label: str, icon: str) -> None:
    """A link to another page; as plain text when this page runs outside the app's navigation
    (``streamlit run pages/score.py``), where Streamlit cannot resolve page links."""
    try:
        st.page_link(page, label=label, icon=icon)
    except StreamlitPageNotFoundError:
        st.caption(f"{icon} {label}: open `{page}` from the app's navigation.")


st.title("Score")
st.caption(
    "Score every profile with saved models and write one row per profile to the output "
    "production table. Linear models and BG/NBD run inside the warehouse once a parity check "
    "against scikit-learn passes; other models stream the features through the model in batches."
)

wh = app_state.warehouse()
settings = app_state.settings()
registry = Registry(settings.models_dir)

with app_state.user_errors():
    cards = registry.list()
    if not cards:
        st.warning(f"No saved model in `{settings.models_dir}` yet: train and save one first.")
        link("pages/train.py", "Train a model", "🧠")
        st.stop()

    by_name: dict[str, dict[int, object]] = {}
    for card in cards:
        by_name.setdefault(card.name, {})[card.version] = card
    names = list(by_name)
    chosen = st.multiselect(
        "Models",
        names,
        default=[n for n in names if n == "churn"] or names[:1],
        key="score_models",
        help="Several models are joined on the profile into one output table.",
    )
    refs: list[str] = []
    for column, name in zip(st.columns(max(len(chosen), 1)), chosen, strict=False):
        versions = sorted(by_name[name], reverse=True)
        active = registry.active(name)
        default = versions.index(active.version) if active and active.version in versions else 0

        def label(version: int, name: str = name, active=active) -> str:
            card = by_name[name][version]
            mark = " · active" if active and active.version == version else ""
            return f"v{version} · {card.kind} · {card.estimator} · cutoff {card.cutoff}{mark}"

        version = column.selectbox(
            f"{name} version", versions, index=default, format_func=label, key=f"score_v_{name}"
        )
        refs.append(f"{name}@{version}")

    if chosen:
        first = by_name[chosen[0]][int(refs[0].split("@")[1])]
        latest = latest_as_of(wh.url, wh, json.dumps(first.mapping, sort_keys=True))
    else:
        latest = dt.date.today()
    left, right = st.columns(2)
    as_of = left.date_input(
        "As of",
        value=latest,
        key="score_as_of",
        help=f"Profiles and events before this date count. Latest data: the day before {latest}.",
    )
    table = right.text_input("Output table", value=DEFAULT_OUTPUT_TABLE, key="score_table")
    with st.expander("Options"):
        method = st.radio(
            "Where to score",
            ["auto", "warehouse", "streamed"],
            horizontal=True,
            key="score_method",
            help="auto: in the warehouse when the model translates to SQL and matches "
            "scikit-learn within 1e-9 on a sample, else streamed.",
        )
        id_column = st.text_input("Identifier column", value="user_id", key="score_id_column")

    if st.button("Score", type="primary", disabled=not chosen, key="score_run"):
        st.session_state.pop("score_result", None)
        with st.status(f"Scoring with {', '.join(refs)}…", expanded=True) as status:
            bar = st.progress(0.0, text="starting")

            def progress(message: str, fraction: float) -> None:
                bar.progress(min(max(fraction, 0.0), 1.0), text=message)

            try:
                result = score(
                    wh,
                    models=refs,
                    table=table.strip(),
                    registry=registry,
                    as_of=as_of,
                    id_column=id_column.strip(),
                    method=method,
                    progress=progress,
                )
            except SqlTraitsError:
                status.update(label="Scoring failed: nothing was written", state="error")
                raise
            status.update(
                label=f"Scored {result.rows:,} profiles in {result.seconds:.1f} s",
                state="complete",
                expanded=False,
            )
        st.session_state["score_result"] = result.to_dict()

    done = st.session_state.get("score_result")
    if done:
        st.success(f"Wrote {done['rows']:,} rows to `{done['table']}` (run `{done['run_id']}`).")
        a, b, c = st.columns(3)
        a.metric("Profiles scored", f"{done['rows']:,}")
        b.metric("Time", f"{done['seconds']:.1f} s")
        c.metric("As of", done["as_of"])
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "model": m["ref"],
                        "columns": ", ".join(m["columns"]),
                        "path": PATHS.get(m["path"], m["path"]),
                        "why": m["reason"],
                        "parity max |diff|": m["parity_max_diff"],
                        "seconds": round(m["seconds"], 2),
                    }
                    for m in done["models"]
                ]
            ),
            hide_index=True,
            key="score_models_table",
        )
        steps = " · ".join(f"{k} {v:.1f} s" for k, v in done["timings"].items())
        swap = "atomic swap" if done["atomic"] else "swap (not atomic on this engine)"
        st.caption(f"Timing: {steps} · {swap} · history in `{done['history_table']}`")
        for note in done["notes"]:
            st.warning(note)
        link("pages/preview.py", "Preview and validate the traits", "📊")
        history = runs(wh, done["table"]) if done["history_table"] else []
        if history:
            st.subheader("Runs")
            st.dataframe(
                pd.DataFrame([r.to_dict() for r in history]), hide_index=True, key="score_runs"
            )
