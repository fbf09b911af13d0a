"""The Score page against a real sample warehouse and a real model registry.

The page links to other pages with ``st.page_link``, which only resolves under the app's
``st.navigation``: so the page is opened through ``app.py``, as users open it.
"""

from __future__ import annotations

import shutil

import pytest
from streamlit.testing.v1 import AppTest

from sqltraits_kit.modelling.registry import Registry
from sqltraits_kit.settings import Settings
from tests.support import ROOT


@pytest.fixture
def page(duckdb_wh, tmp_path, monkeypatch, project):
    """The Score page, reached through the app's navigation, with this test's warehouse."""
    monkeypatch.delenv("SEGMENT_WRITE_KEY", raising=False)

    def open_page(script: str, *, settings: Settings | None = None, timeout: float = 60):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
        at.session_state["warehouse"] = duckdb_wh
        at.session_state["settings"] = settings or Settings(
            db_url=duckdb_wh.url, models_dir=tmp_path / "models"
        )
        at.run()
        assert not at.exception, at.exception
        return at.switch_page(script)

    return open_page


def _settings(duckdb_wh, registry: Registry) -> Settings:
    return Settings(db_url=duckdb_wh.url, models_dir=registry.root)


def _with_models(fitted, tmp_path) -> Registry:
    registry, _refs = fitted
    root = tmp_path / "models"
    shutil.copytree(registry.root, root)
    return Registry(root)


def test_without_models_the_page_points_to_training(page):
    at = page("pages/score.py").run()
    assert not at.exception, at.exception
    assert "No model trained on this warehouse" in at.warning[0].value
    assert not at.button
    assert [e.proto.label for e in at.get("page_link")] == ["Train a model"]


def test_scoring_writes_the_table_and_reports_paths(page, duckdb_wh, trained, tmp_path):
    registry = _with_models(trained, tmp_path)
    registry.set_active("churn", 1)
    at = page("pages/score.py", settings=_settings(duckdb_wh, registry), timeout=180).run()
    assert not at.exception, at.exception
    # by default the models the default trait set (traitsets/churn.toml) names, in its order
    assert at.multiselect(key="score_models").value == ["churn", "ltv", "btyd"]
    assert at.selectbox(key="score_v_churn").value == 1
    assert at.text_input(key="score_table").value == "churn_traits"
    at.multiselect(key="score_models").unselect("ltv").run()
    at.button(key="score_run").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert "Wrote 2,000 rows to `churn_traits`" in at.success[0].value
    assert at.metric[0].value == "2,000"
    models = at.dataframe[0].value
    assert models["model"].tolist() == ["churn@1", "btyd@1"]
    assert models["path"].tolist() == ["in the warehouse", "in the warehouse"]
    assert models["why"].tolist() == [
        "SQL checked against scikit-learn",
        "SQL checked against numpy",  # the BG/NBD pair's reference is numpy, not scikit-learn
    ]
    details = next(e for e in at.expander if e.label == "Each model's path in detail")
    assert "max |SQL - scikit-learn|" in details.caption[0].value  # the figure, kept
    # every figure in the one format: a parity difference is 2.2e-16, not 17 decimals
    assert all(len(v) <= 8 for v in models["max |diff|"]), models["max |diff|"]
    runs = at.dataframe[1].value  # the runs as a person reads them (issue 17 item 9)
    assert list(runs.columns) == ["run", "scored at", "models", "rows", "current"]
    assert runs["current"].tolist() == [True] and runs["rows"].tolist() == ["2,000"]
    assert runs["models"].tolist() == ["churn@1, btyd@1"]
    assert runs["scored at"].str.endswith(" UTC").all()
    links = [(e.proto.page, e.proto.label) for e in at.get("page_link")]
    assert any(label.startswith("Preview the traits") for _, label in links), links
    assert duckdb_wh.table("churn_traits").count().execute() == 2_000
    assert "p_alive" in duckdb_wh.table("churn_traits").columns


def test_a_streamed_model_says_why(page, duckdb_wh, trained, tmp_path):
    registry = _with_models(trained, tmp_path)
    at = page("pages/score.py", settings=_settings(duckdb_wh, registry), timeout=180).run()
    at.multiselect(key="score_models").set_value(["churn-gbm"]).run()
    at.text_input(key="score_table").input("gbm_traits").run()
    at.button(key="score_run").click().run()
    assert not at.exception, at.exception
    models = at.dataframe[0].value
    assert models["path"].tolist() == ["streamed"]
    assert "no SQL translation" in models["why"].iloc[0]
    assert duckdb_wh.table("gbm_traits").count().execute() == 2_000


def test_errors_are_messages_and_nothing_is_written(page, duckdb_wh, trained, tmp_path):
    registry = _with_models(trained, tmp_path)
    at = page("pages/score.py", settings=_settings(duckdb_wh, registry), timeout=180).run()
    at.text_input(key="score_table").input("Churn Traits!").run()
    at.button(key="score_run").click().run()
    assert not at.exception, at.exception
    assert any("lower snake_case" in e.value for e in at.error)
    assert not at.success
    assert not duckdb_wh.has_table("churn_traits")


def test_an_input_table_is_never_replaced(page, duckdb_wh, trained, tmp_path):
    registry = _with_models(trained, tmp_path)
    at = page("pages/score.py", settings=_settings(duckdb_wh, registry), timeout=180).run()
    at.text_input(key="score_table").input("users").run()
    assert not at.exception, at.exception
    assert any("`users` already exists and is not an output table" in e.value for e in at.error)
    assert at.button(key="score_run").disabled
    assert "email" in duckdb_wh.table("users").columns


def test_a_model_the_default_trait_set_needs_is_flagged_before_scoring(
    page,
    duckdb_wh,
    trained,
    tmp_path,
):
    registry = _with_models(trained, tmp_path)
    at = page("pages/score.py", settings=_settings(duckdb_wh, registry), timeout=180).run()
    assert not at.warning  # churn, ltv and btyd write everything churn.toml reads
    assert any("**churn** :material/check:" in c.value for c in at.caption)
    at.multiselect(key="score_models").set_value(["churn"]).run()
    (warning,) = at.warning
    assert "Trait set 'churn' reads p_alive from `churn_traits`" in warning.value
    assert not at.button(key="score_run").disabled  # a warning: scoring stays possible


def test_two_churn_models_of_one_horizon_are_refused_before_scoring(
    page, duckdb_wh, trained, tmp_path
):
    registry = _with_models(trained, tmp_path)
    at = page("pages/score.py", settings=_settings(duckdb_wh, registry), timeout=180).run()
    at.multiselect(key="score_models").set_value(["churn", "churn-gbm"]).run()
    assert not at.exception, at.exception
    assert any(
        "models churn@1 and churn-gbm@1 both write column 'churn_probability_90d'" in e.value
        for e in at.error
    ), [e.value for e in at.error]
    assert at.button(key="score_run").disabled
    assert not duckdb_wh.has_table("churn_traits")
