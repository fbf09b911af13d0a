"""Preview: coming in a later issue (this page says what it will do, it shows no fake content)."""

from __future__ import annotations

import streamlit as st

st.title("Preview")
st.info(
    "Not built yet. "
    "Check the traits against Segment's contract, see their distributions "
    "and drift against the last publish."
)
