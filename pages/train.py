"""Train: coming in a later issue (this page says what it will do, it shows no fake content)."""

from __future__ import annotations

import streamlit as st

st.title("Train")
st.info(
    "Not built yet. "
    "Train churn and LTV models on the warehouse tables, with metrics beside a reference predictor."
)
