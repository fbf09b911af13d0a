"""Issue 18 in a real browser: a warehouse that is not the demo (other table and column names,
integer ids, no activity tables), from the mapping to a publish of the user's own trait names,
rounded and with a tolerance, to the local test server -- without leaving the browser.

The screenshots of each step are kept in ``test-artifacts/crm-*.png``.
"""

from __future__ import annotations

import pytest

from sqltraits_kit.traits.traitset import TraitSet
from sqltraits_kit.workflows.project import Project
from tests.support.browser import (
    ARTIFACTS,
    add_option,
    alert,
    assert_clean,
    choose,
    click,
    go_to,
    metrics,
    open_app,
    pick,
    screenshot,
    selected,
    text_of,
    tick,
    type_into,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CUSTOMERS = 2_357  # CDNOW's customers in tests/data
EDIT = "preview_edit_new_repeat_scores_user_id"  # the editor's keys for the new trait set


def test_own_tables_to_own_traits_in_the_browser(crm_page, crm_app):
    page = crm_page
    url, project, db_url = crm_app
    print(f"\nscreenshots: {ARTIFACTS}/crm-*.png")
    # Nothing is fetched from another host (issue 17 item 14: a favicon from a font host
    # was an error in the console on every page offline).
    elsewhere: list[str] = []
    page.on("request", lambda r: None if _local(r.url) else elsewhere.append(r.url))

    # Data: the user's tables; activity drawn from the orders table, whatever its name
    open_app(page, url)
    page.get_by_role("heading", name="Data", exact=True).wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    assert_clean(page)
    screenshot(page, "crm-1-data")

    # Train: the mapping is guessed with its reasons, confirmed, and no cutoff before it holds
    go_to(page, "Train")
    assert selected(page, "train_map_orders_table") == "shop_orders"
    assert selected(page, "train_map_order_timestamp") == "ordered_at"
    assert selected(page, "train_map_profile_id") == "customer_no"
    page.get_by_text("Cutoff 1998-").wait_for()
    screenshot(page, "crm-2-train-mapping")
    click(page, "train_map_save")
    alert(page, "success", "Mapping and horizon (90 days) saved")
    choose(page, "train_estimator_churn", "logistic regression (baseline)")
    type_into(page, "train_name_churn_logistic", "repeat")
    click(page, "train_run")
    page.get_by_role("heading", name="repeat: churn model · logistic").wait_for()
    click(page, "train_save")
    alert(page, "success", "Saved as repeat@1")
    assert_clean(page)
    pick(page, "train_kind", "ltv")
    choose(page, "train_estimator_ltv", "BG/NBD + Gamma-Gamma (buy-till-you-die)")
    type_into(page, "train_name_ltv_btyd", "value")
    click(page, "train_run")
    page.get_by_role("heading", name="value: BG/NBD + Gamma-Gamma").wait_for()
    click(page, "train_save")
    alert(page, "success", "Saved as value@1")
    assert_clean(page)
    screenshot(page, "crm-3-train-value")

    # Score: this warehouse's models, an output table named from them, Segment's identifier
    go_to(page, "Score")
    add_option(page, "score_models", "value")
    assert text_of(page, "score_table") == "repeat_scores"
    click(page, "score_run")
    alert(page, "success", f"Wrote {CUSTOMERS:,} rows to repeat_scores")
    assert_clean(page)
    screenshot(page, "crm-4-score")

    # Preview: the output table (never an input table), then a trait set of the user's own
    go_to(page, "Preview")
    assert selected(page, "preview_table") == "repeat_scores"
    page.locator(".js-plotly-plot").first.wait_for()
    type_into(page, f"{EDIT}_name", "crm_churn")
    type_into(page, f"{EDIT}_churn_probability_90d_trait", "churn_risk")
    tick(page, f"{EDIT}_p_no_purchase_90d_on")
    click(page, f"{EDIT}_add")
    type_into(page, f"{EDIT}_d0_name", "risk_tier")
    assert selected(page, f"{EDIT}_d0_column") == "churn_probability_90d"
    type_into(page, f"{EDIT}_d0_rule", "0.3, 0.7 -> low, medium, high")
    page.get_by_text('+churn_probability_90d = "churn_risk"').wait_for()  # the diff
    assert_clean(page)
    screenshot(page, "crm-5-preview-editor")
    click(page, f"{EDIT}_save")
    alert(page, "success", "recorded it in the project")
    assert selected(page, "preview_traitset") == "crm_churn.toml"
    alert(page, "success", "checks pass")
    assert_clean(page)
    screenshot(page, "crm-6-preview-trait-set")

    # Publish: the trait set chosen on the Preview, to the local test server
    go_to(page, "Publish")
    assert selected(page, "publish_traitset") == "crm_churn.toml"
    assert "Local test server" in selected(page, "publish_destination")
    click(page, "publish_dry_button")
    assert metrics(page)["New"] == f"{CUSTOMERS:,}"
    assert_clean(page)
    screenshot(page, "crm-7-publish-dry-run")
    click(page, "publish_button")
    alert(page, "success", f"{CUSTOMERS:,} sent, 0 failed")
    page.get_by_role("heading", name="What the local test server holds").wait_for()
    page.get_by_text(f"one row per profile ({CUSTOMERS:,} profiles)").wait_for()
    assert_clean(page)
    screenshot(page, "crm-8-published")

    # A reload keeps the choices: the project file holds them, for `sqltraits run` too
    open_app(page, page.url)  # a reload: a new session
    page.get_by_role("heading", name="Publish", exact=True).first.wait_for()
    assert selected(page, "publish_traitset") == "crm_churn.toml"
    go_to(page, "Train")
    page.get_by_text("Table mapping — saved in the project").wait_for()
    assert_clean(page)
    saved = Project(project / "sqltraits.toml").choices(db_url)
    assert saved.trait_sets == ("traitsets/crm_churn.toml",)
    assert saved.output_table == "repeat_scores" and saved.mapping is not None
    trait_set = TraitSet.load(project / "traitsets" / "crm_churn.toml")
    assert trait_set.traits["churn_probability_90d"] == "churn_risk"
    assert trait_set.decimals["churn_risk"] == 3 and trait_set.tolerance["churn_risk"] == 0.02
    assert trait_set.model is not None and trait_set.model.refs() == ["repeat", "value"]
    assert not elsewhere, elsewhere


def _local(url: str) -> bool:
    return url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:"))
