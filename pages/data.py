"""Data: the warehouse in use, its tables, a preview, and activity over time."""

from __future__ import annotations

import json

import plotly.express as px
import streamlit as st

import app_state
from sqltraits_kit.access import can_connect_warehouse
from sqltraits_kit.workflows.data_overview import table_groups
from sqltraits_kit.workflows.training_setup import check_mapping

st.title("Data")
st.caption(
    "The warehouse every page reads: its tables, a look at their rows, and the activity the "
    "models learn from. Without a URL the app uses the demo sample it builds on first start."
)

wh = app_state.warehouse()

connect_access = can_connect_warehouse(app_state.settings(), app_state.current_user())
if connect_access:
    with st.form("data_connection"):
        url = st.text_input(
            "Warehouse URL",
            value=app_state.settings().db_url or "",
            placeholder="empty = demo sample · duckdb:///path/file.duckdb · "
            "postgres://user@host:5432/db",
            help="Any Ibis backend URL this machine can reach (local, single-user: no login is "
            "configured). Credentials belong in st.secrets or the environment.",
            key="data_url",
            persist_state="session",
        )
        if st.form_submit_button("Connect"):
            with app_state.user_errors():
                wh = app_state.switch_warehouse(url.strip() or None)
                st.success(f"Connected to {wh.display_url}")
else:
    st.caption(f"Warehouse: {connect_access.reason}.")

st.caption(f"In use: `{wh.display_url}` — backend **{wh.backend}**")

with app_state.user_errors():
    overview = app_state.table_overview(wh.url, wh)
    if overview.empty:
        st.info("This warehouse has no tables yet: connect to another one above.")
        st.stop()
    groups = table_groups(wh)
    yours = overview[overview["table"].isin(groups["yours"])]
    left, right = st.columns([2, 3])
    with left:
        st.subheader("Tables")
        st.dataframe(
            yours[["table", "rows", "columns"]],
            hide_index=True,
            column_config={"rows": st.column_config.NumberColumn(format="localized")},
        )
        if groups["reference"] or groups["kit"]:
            with st.expander(f"{len(groups['reference']) + len(groups['kit'])} more tables"):
                if groups["reference"]:
                    st.caption(
                        f"Demo reference (true parameters): {', '.join(groups['reference'])}"
                    )
                if groups["kit"]:
                    st.caption(f"The kit's own (sync state, history): {', '.join(groups['kit'])}")
    with right:
        st.subheader("Preview")
        names = yours["table"].tolist() or overview["table"].tolist()
        table = st.selectbox("Table", names, key="data_table", persist_state="session")
        limit = st.slider("Rows", 5, 500, 50, key="data_limit", persist_state="session")
        schema = overview.set_index("table").loc[table, "schema"]
        st.caption(f"Schema: {schema}")
        st.dataframe(app_state.preview(wh.url, wh, table, limit), hide_index=True)

    st.subheader("Activity over time")
    proposal = app_state.mapping_proposal(wh)
    mapping, _problems = check_mapping(wh, proposal.values)
    if mapping is None:
        st.info("No orders table is mapped yet: the Train page proposes a mapping to confirm.")
        app_state.page_link("pages/train.py", "Map the tables", ":material/model_training:")
        st.stop()
    grain = st.radio(
        "Grain",
        ["week", "month", "day"],
        horizontal=True,
        key="data_grain",
        persist_state="session",
    )
    mapped = json.dumps(mapping.to_dict(), sort_keys=True)
    activity = app_state.activity(wh.url, wh, mapped, grain)
    labels = {"period": grain.title(), "events": f"rows per {grain}"}
    fig = px.line(activity, x="period", y="events", color="table", labels=labels)
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=10, b=10))
    st.plotly_chart(fig, width="stretch")
    where = "saved in the project" if proposal.source == "project" else "guessed, not saved yet"
    st.caption(
        f"Rows per {grain} in the mapped tables ({where}), counted inside the warehouse; a last "
        "period the data stops inside is left out."
    )
