"""AppTest fixtures: every page runs against a real (copied) sample warehouse."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit import config
from streamlit.testing.v1 import AppTest

from sqltraits_kit.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clear_streamlit_caches():
    # Both caches outlive an AppTest instance; a stale entry would hide a bug.
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def bind():
    """Where the server listens, as the pages read it (``server.address``): 127.0.0.1, as
    .streamlit/config.toml says, unless a test calls ``bind("0.0.0.0")``. Set explicitly: which
    config.toml a test process read depends on its working directory when it first asked."""
    before = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")
    yield lambda address: config.set_option("server.address", address)
    config.set_option("server.address", before)


@pytest.fixture
def page(duckdb_wh, tmp_path, monkeypatch, bind):
    """Open one page script with this test's warehouse and settings already in the session."""
    monkeypatch.delenv("SEGMENT_WRITE_KEY", raising=False)

    def open_page(script: str, *, settings: Settings | None = None, timeout: float = 60) -> AppTest:
        at = AppTest.from_file(str(ROOT / script), default_timeout=timeout)
        at.session_state["warehouse"] = duckdb_wh
        at.session_state["settings"] = settings or Settings(
            db_url=duckdb_wh.url, models_dir=tmp_path / "models"
        )
        return at

    return open_page
