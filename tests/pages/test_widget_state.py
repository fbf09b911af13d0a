"""Widgets keep their values while hidden: on another page, or in a branch not drawn.

Streamlit forgets a widget's value when a run does not draw it; the pages declare
``persist_state="session"`` on their inputs so a user's choices survive moving around.
"""

from __future__ import annotations

import pytest

from tests.support import ROOT

PAGES = sorted(p.name for p in (ROOT / "pages").glob("*.py"))


def test_choices_survive_a_trip_to_other_pages(page):
    at = page("app.py").run()
    assert not at.exception, at.exception
    at.switch_page("pages/train.py").run()
    at.selectbox(key="train_estimator_churn").select("logistic").run()
    at.number_input(key="train_horizon").set_value(60).run()
    at.switch_page("pages/data.py").run()
    at.selectbox(key="data_table").select("users").run()
    at.slider(key="data_limit").set_value(7).run()
    at.radio(key="data_grain").set_value("month").run()

    at.switch_page("pages/preview.py").run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="train_estimator_churn").value == "logistic"
    assert at.number_input(key="train_horizon").value == 60
    at.switch_page("pages/data.py").run()
    assert at.selectbox(key="data_table").value == "users"
    assert at.slider(key="data_limit").value == 7
    assert at.radio(key="data_grain").value == "month"
    assert len(at.dataframe[1].value) == 7  # and the page uses them


def test_a_hidden_widget_keeps_its_value(page):
    at = page("pages/train.py").run()
    at.selectbox(key="train_estimator_churn").select("logistic").run()
    at.radio(key="train_churn_on").set_value("activity").run()
    at.radio(key="train_kind").set_value("ltv").run()  # the churn-only widgets are not drawn
    assert "train_estimator_churn" not in {w.key for w in at.selectbox}
    at.radio(key="train_kind").set_value("churn").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="train_estimator_churn").value == "logistic"
    assert at.radio(key="train_churn_on").value == "activity"


@pytest.mark.parametrize("script", PAGES)
def test_every_keyed_input_persists(script):
    """A new input widget without ``persist_state`` would lose its value on a page switch."""
    import ast

    tree = ast.parse((ROOT / "pages" / script).read_text())
    inputs = {
        "selectbox",
        "multiselect",
        "radio",
        "slider",
        "select_slider",
        "number_input",
        "text_input",
        "date_input",
        "toggle",
    }
    missing = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr not in inputs:
            continue
        kwargs = {k.arg: k.value for k in node.keywords}
        if "key" not in kwargs:
            continue
        key = kwargs["key"]
        # the drift threshold keeps its own per-trait-set value (the Publish page reads it)
        if isinstance(key, ast.JoinedStr) and "preview_threshold__" in ast.unparse(key):
            continue
        persist = kwargs.get("persist_state")
        if not (isinstance(persist, ast.Constant) and persist.value == "session"):
            missing.append(f"line {node.lineno}: {ast.unparse(key)}")
    assert not missing, f"{script}: inputs without persist_state='session': {missing}"
