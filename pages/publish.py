"""Publish: coming in a later issue (this page says what it will do, it shows no fake content)."""

from __future__ import annotations

import streamlit as st

st.title("Publish")
st.info(
    "Not built yet. "
    "Dry-run and publish the changed traits to Segment, with run history and failed rows."
)
