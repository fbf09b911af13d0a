"""Score: coming in a later issue (this page says what it will do, it shows no fake content)."""

from __future__ import annotations

import streamlit as st

st.title("Score")
st.info("Not built yet. Score every profile with a saved model into the output production table.")
