"""AppTest fixtures: every page runs against a real (copied) sample warehouse."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import streamlit as st
from streamlit import config
from streamlit.testing.v1 import AppTest

from sqltraits_kit.modelling.registry import Registry
from sqltraits_kit.modelling.training import train_model
from sqltraits_kit.settings import Settings
from sqltraits_kit.warehouse import Warehouse, connect
from tests.support.crm import build_crm

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
def project(tmp_path, monkeypatch) -> Path:
    """The app's project folder for this test (``SQLTRAITS_PROJECT_DIR``): a copy of the
    repository's ``traitsets/`` and no ``sqltraits.toml`` yet, so a save never touches the
    checkout."""
    folder = tmp_path / "project"
    shutil.copytree(ROOT / "traitsets", folder / "traitsets")
    monkeypatch.setenv("SQLTRAITS_PROJECT_DIR", str(folder))
    return folder


@pytest.fixture
def page(duckdb_wh, tmp_path, monkeypatch, bind, project):
    """Open one page script with this test's warehouse and settings already in the session."""
    monkeypatch.delenv("SEGMENT_WRITE_KEY", raising=False)

    def open_page(
        script: str,
        *,
        settings: Settings | None = None,
        timeout: float = 60,
        wh: Warehouse | None = None,
    ) -> AppTest:
        wh = wh or duckdb_wh
        at = AppTest.from_file(str(ROOT / script), default_timeout=timeout)
        at.session_state["warehouse"] = wh
        at.session_state["settings"] = settings or Settings(
            db_url=wh.url, models_dir=tmp_path / "models"
        )
        return at

    return open_page


@pytest.fixture(scope="session")
def crm_file(tmp_path_factory) -> Path:
    """The CRM warehouse that is not the demo (``tests.support.crm``), built once."""
    return build_crm(tmp_path_factory.mktemp("crm") / "crm.duckdb")


@pytest.fixture
def crm_wh(crm_file, tmp_path):
    """A writable copy of the CRM warehouse, fresh for each test."""
    path = tmp_path / "crm.duckdb"
    shutil.copyfile(crm_file, path)
    wh = connect(f"duckdb:///{path}")
    yield wh
    wh.close()


@pytest.fixture(scope="session")
def crm_models(crm_file, tmp_path_factory) -> Registry:
    """Models trained once on the CRM warehouse, under names of the user's own: ``repeat``
    (churn, logistic) and ``value`` (the BG/NBD pair)."""
    from sqltraits_kit.modelling.mapping_guess import guess_mapping

    registry = Registry(tmp_path_factory.mktemp("crm_models"))
    wh = connect(f"duckdb:///{crm_file}", read_only=True)
    try:
        mapping = guess_mapping(wh).mapping
        train_model(
            wh,
            kind="churn",
            estimator="logistic",
            mapping=mapping,
            name="repeat",
            registry=registry,
        )
        train_model(
            wh, kind="ltv", estimator="btyd", mapping=mapping, name="value", registry=registry
        )
    finally:
        wh.close()
    return registry
