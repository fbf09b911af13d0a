"""The app on a warehouse that is not the demo (issue 18): the mapping is guessed with its
reasons, confirmed into the project file, and every page starts from the project's choices in a
new session; an empty warehouse is a message on every page, never a traceback (issue 17)."""

from __future__ import annotations

import json
import shutil

import pytest

from sqltraits_kit.modelling.registry import Registry
from sqltraits_kit.settings import Settings
from sqltraits_kit.traits.traitset import TraitSet
from sqltraits_kit.warehouse import connect
from sqltraits_kit.workflows.project import Project

PAGES = ["data", "train", "score", "preview", "publish"]


def test_the_mapping_is_guessed_confirmed_and_remembered(page, crm_wh, project):
    at = page("pages/train.py", wh=crm_wh).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    chosen = {
        key: at.selectbox(key=f"train_map_{key}").value
        for key in ("profiles_table", "profile_id", "orders_table", "order_timestamp")
    }
    assert chosen == {
        "profiles_table": "crm_customers",
        "profile_id": "customer_no",
        "orders_table": "shop_orders",
        "order_timestamp": "ordered_at",
    }
    assert at.selectbox(key="train_map_order_revenue").value == "dollars"
    assert at.selectbox(key="train_map_tracks_table").value == "(none)"
    # an integer id is never offered as a timestamp
    assert at.selectbox(key="train_map_order_timestamp").options == ["ordered_at"]
    # the reasons travel with the guess
    assert "6,919 rows" in at.selectbox(key="train_map_orders_table").help
    assert any("guessed from names and types" in e.label for e in at.expander)
    cutoff = next(c.value for c in at.caption if c.value.startswith("Cutoff "))
    assert cutoff.startswith("Cutoff 1998-"), cutoff  # not 1969: the mapping is valid

    at.number_input(key="train_horizon").set_value(120).run()
    at.button(key="train_map_save").click().run()
    assert not at.exception, at.exception
    assert any("saved in" in s.value for s in at.success)
    saved = Project(project / "sqltraits.toml").choices(crm_wh.url)
    assert saved.horizon_days == 120
    assert saved.mapping is not None and saved.mapping.orders_table == "shop_orders"
    assert saved.mapping.tracks_table is None

    # a reload (a new session) starts from the project, not from a guess or the demo
    again = page("pages/train.py", wh=crm_wh).run()
    assert not again.exception, again.exception
    assert again.number_input(key="train_horizon").value == 120
    assert any(e.label == "Table mapping — saved in the project" for e in again.expander)
    assert again.selectbox(key="train_map_orders_table").value == "shop_orders"
    assert again.button(key="train_map_save").disabled  # nothing new to save


def test_a_model_trains_on_the_guessed_mapping(page, crm_wh):
    at = page("pages/train.py", wh=crm_wh).run()
    at.selectbox(key="train_estimator_churn").select("logistic").run()
    at.button(key="train_run").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    card = at.session_state["train_result"].card
    assert card.mapping["orders_table"] == "shop_orders"
    assert any("No reference predictor" in c.value for c in at.caption)


@pytest.mark.parametrize("script", PAGES)
def test_an_empty_warehouse_is_a_message_on_every_page(page, tmp_path, script):
    empty = connect(f"duckdb:///{tmp_path / 'empty.duckdb'}", create=True)
    try:
        at = page(f"pages/{script}.py", wh=empty).run()
        assert not at.exception, at.exception
        assert not [e.value for e in at.error], script
        assert at.info or at.warning or at.caption, "the page says what to do next"
    finally:
        empty.close()


def _registry(tmp_path, *registries: Registry) -> Registry:
    """One registry holding copies of the given ones (their model names differ)."""
    root = tmp_path / "models"
    for registry in registries:
        shutil.copytree(registry.root, root, dirs_exist_ok=True)
    return Registry(root)


def test_data_page_activity_follows_the_mapping(page, crm_wh):
    at = page("pages/data.py", wh=crm_wh).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    (chart,) = at.get("plotly_chart")
    figure = json.loads(chart.proto.spec)
    assert {trace["name"] for trace in figure["data"]} == {"shop_orders"}
    assert any("guessed, not saved yet" in c.value for c in at.caption)


def test_score_defaults_come_from_the_warehouse_and_the_project(
    page, crm_wh, crm_models, trained, tmp_path, project
):
    registry = _registry(tmp_path, crm_models, trained[0])
    settings = Settings(db_url=crm_wh.url, models_dir=registry.root)
    at = page("pages/score.py", wh=crm_wh, settings=settings, timeout=180).run()
    assert not at.exception, at.exception
    # the demo's models are not this warehouse's: listed only when asked, and said so
    assert at.multiselect(key="score_models").options == ["repeat", "value"]
    assert at.multiselect(key="score_models").value == ["repeat"]
    assert at.text_input(key="score_table").value == "repeat_scores"  # from the model's name
    assert at.selectbox(key="score_id_column").value == "user_id"
    assert not any("Trait sets reading" in c.value for c in at.caption)  # none on this warehouse
    at.toggle(key="score_other_warehouses").set_value(True).run()
    assert "churn" in at.multiselect(key="score_models").options
    assert "Models from another warehouse are listed: btyd@1 (trained on `" in at.warning[0].value
    at.toggle(key="score_other_warehouses").set_value(False).run()

    at.multiselect(key="score_models").set_value(["repeat", "value"]).run()
    at.text_input(key="score_table").input("crm_traits").run()
    at.button(key="score_run").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert "Wrote 2,357 rows to `crm_traits`" in at.success[0].value
    assert Project(project / "sqltraits.toml").choices(crm_wh.url).output_table == "crm_traits"

    again = page("pages/score.py", wh=crm_wh, settings=settings, timeout=180).run()
    assert again.text_input(key="score_table").value == "crm_traits"  # the project remembers


@pytest.fixture
def crm_scored(crm_wh, crm_models):
    """The CRM warehouse with an output table of its own models' scores."""
    from sqltraits_kit.traits.scoring import score

    score(crm_wh, models=["repeat", "value"], registry=crm_models, table="crm_traits")
    return crm_wh


def _through_app(page, wh, settings, script: str):
    """A page reached through app.py's navigation, as users open it (page links resolve)."""
    at = page("app.py", wh=wh, settings=settings, timeout=180).run()
    assert not at.exception, at.exception
    return at.switch_page(script).run()


def test_a_trait_set_made_in_the_browser_is_saved_remembered_and_published(
    page, crm_scored, crm_models, tmp_path, project
):
    wh = crm_scored
    settings = Settings(db_url=wh.url, models_dir=crm_models.root)
    at = _through_app(page, wh, settings, "pages/preview.py")
    assert not at.exception, at.exception
    # no trait set on this warehouse: the output table, never an input table, is the source
    assert at.radio(key="preview_mode").value == "Output table"
    assert at.selectbox(key="preview_table").options == ["crm_traits"]
    slug = "preview_edit_new_crm_traits_user_id"
    assert at.text_input(key=f"{slug}_name").value == "crm_traits"
    # the draft rounds and sets a tolerance: a re-score does not re-send every profile
    assert at.selectbox(key=f"{slug}_churn_probability_90d_decimals").value == 3
    assert at.number_input(key=f"{slug}_churn_probability_90d_tolerance").value == 0.02
    assert at.selectbox(key=f"{slug}_expected_spend_90d_decimals").value == 2

    at.text_input(key=f"{slug}_name").input("crm_churn").run()
    at.text_input(key=f"{slug}_churn_probability_90d_trait").input("churn_risk").run()
    at.checkbox(key=f"{slug}_p_no_purchase_90d_on").uncheck().run()
    at.button(key=f"{slug}_add").click().run()
    at.text_input(key=f"{slug}_d0_name").input("risk_tier").run()
    at.selectbox(key=f"{slug}_d0_column").select("churn_probability_90d").run()
    at.text_input(key=f"{slug}_d0_rule").input("0.3, 0.7 -> low, medium, high").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    (diff,) = [c for c in at.code if c.language == "diff"]
    assert '+churn_probability_90d = "churn_risk"' in diff.value
    assert "p_no_purchase_90d" not in diff.value

    at.button(key=f"{slug}_save").click().run()
    assert not at.exception, at.exception
    path = project / "traitsets" / "crm_churn.toml"
    saved = TraitSet.load(path)
    assert saved.traits["churn_probability_90d"] == "churn_risk"
    assert saved.decimals["churn_risk"] == 3 and saved.tolerance["churn_risk"] == 0.02
    assert saved.derived[0].thresholds == (0.3, 0.7)
    assert saved.model is not None and saved.model.refs() == ["repeat", "value"]
    choices = Project(project / "sqltraits.toml").choices(wh.url)
    assert choices.trait_sets == ("traitsets/crm_churn.toml",)
    # the Preview now shows the saved trait set
    assert at.radio(key="preview_mode").value == "Trait set"
    assert at.selectbox(key="preview_traitset").value == "crm_churn.toml"
    assert any("checks pass" in s.value for s in at.success), [s.value for s in at.success]

    # the Publish page starts from what the Preview showed, and sends it rounded
    at.switch_page("pages/publish.py").run()
    assert not at.exception, at.exception
    assert at.radio(key="publish_source_kind").value == "Trait set"
    assert at.selectbox(key="publish_traitset").value == "crm_churn.toml"
    at.button(key="publish_dry_button").click().run()
    assert {m.label: m.value for m in at.metric}["New"] == "2,357"
    at.button(key="publish_button").click().run()
    assert not at.exception, at.exception
    assert any("2,357 sent, 0 failed" in s.value for s in at.success)
    holdings = next(d.value for d in at.dataframe if "churn_risk" in d.value.columns)
    assert set(holdings.columns) >= {"churn_risk", "risk_tier", "p_alive"}
    assert (holdings["churn_risk"].dropna() * 1000 % 1).abs().max() < 1e-6  # 3 decimals

    # a new session (a reload) offers the saved trait set first
    again = _through_app(page, wh, settings, "pages/publish.py")
    assert again.selectbox(key="publish_traitset").value == "crm_churn.toml"

    # and `sqltraits run` takes the file as it is: it re-scores with [model], then checks
    from sqltraits_kit.workflows.pipeline import run_trait_set

    result = run_trait_set(wh, path, registry=crm_models.root, client=None, dry_run=True)
    assert result.exit_code == 0, result.steps
