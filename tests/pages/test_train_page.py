"""The Train page, run with AppTest against a copy of the sample warehouse."""

from __future__ import annotations

import shutil

from sqltraits_kit.modelling.registry import Registry
from sqltraits_kit.modelling.training import train_model
from sqltraits_kit.settings import Settings


def _metrics(at) -> dict:
    frame = next(d.value for d in at.dataframe if "metric" in d.value.columns)
    return frame.set_index("metric").to_dict("index")


def number(text: str) -> float:
    """A figure as the page shows it ("1,234.5", "11.7%")."""
    return float(text.replace(",", "").rstrip("%"))


def test_the_page_offers_a_choice_and_no_results_before_training(page):
    at = page("pages/train.py").run()
    assert not at.exception, at.exception
    assert at.radio(key="train_kind").value == "churn"
    assert at.selectbox(key="train_estimator_churn").options[:3] == [
        "auto: every candidate, the best on a validation window wins",
        "logistic regression (baseline)",
        "gradient boosting (HistGradientBoosting)",
    ]
    assert at.selectbox(key="train_estimator_churn").value == "auto"
    assert at.toggle(key="train_auto_cutoff").value is True
    assert at.selectbox(key="train_map_orders_table").value == "order_completed"
    assert not at.get("plotly_chart")
    assert any("No saved models" in i.value for i in at.info)


def test_train_churn_shows_metrics_beside_the_reference_and_saves(page, tmp_path):
    at = page("pages/train.py").run()
    at.selectbox(key="train_estimator_churn").select("logistic").run()
    at.button(key="train_run").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    status = at.status[0]
    assert status.label == "Trained" and status.get("progress")  # progress shown while training
    metrics = _metrics(at)
    auc = metrics["ROC AUC"]
    assert 0.5 < number(auc["model"]) <= 1 and 0.5 < number(auc["reference"]) <= 1
    assert 0.5 < number(auc["best baseline"]) < 1 and auc["baseline"] in ("recency", "btyd")
    assert {"PR AUC", "Brier score", "top-decile lift", "churn rate"} <= set(metrics)
    assert metrics["churn rate"]["model"].endswith("%")  # a share, in its unit
    assert len(at.get("plotly_chart")) == 4  # ROC, calibration, gain, importance

    at.button(key="train_save").click().run()
    assert not at.exception
    assert any("Saved as churn@1" in s.value for s in at.success)
    assert [c.ref for c in Registry(tmp_path / "models").list()] == ["churn@1"]
    versions = next(d.value for d in at.dataframe if "created" in d.value.columns)
    assert versions["model"].tolist() == ["churn@1"]


def test_a_young_log_says_why_and_shorter_windows_train(page):
    # The sample's log starts on 2024-11-02: 89 days before 2025-01-30, less than 90.
    at = page("pages/train.py").run()
    at.selectbox(key="train_estimator_churn").select("logistic").run()
    at.toggle(key="train_auto_cutoff").set_value(False).run()
    at.date_input(key="train_cutoff").set_value("2025-01-30").run()
    at.button(key="train_run").click().run()
    assert not at.exception, at.exception
    assert any("shorter feature windows" in e.value for e in at.error), at.error
    at.multiselect(key="train_windows").unselect(90).run()
    assert at.button(key="train_run").disabled is False
    at.button(key="train_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.status[0].label == "Trained"
    assert at.session_state["train_result"].card.windows == [7, 30]
    at.multiselect(key="train_windows").set_value([]).run()
    assert at.button(key="train_run").disabled is True  # no window, nothing to count


def test_auto_shows_every_candidate_the_champion_and_the_baselines(page):
    at = page("pages/train.py").run()
    at.radio(key="train_kind").set_value("ltv").run()
    at.button(key="train_run").click().run()
    assert not at.exception, at.exception
    candidates = next(d.value for d in at.dataframe if "candidate" in d.value.columns)
    assert set(candidates["candidate"]) == {
        "poisson", "tweedie", "gbm", "gbm_small", "bgnbd", "mbgnbd", "pnbd", "blend"
    }  # fmt: skip
    assert candidates["champion"].sum() == 1
    assert {"validation mae", "test mae"} <= set(candidates.columns)
    assert any(c.value.startswith("Champion **") for c in at.caption)
    assert any("refit on" in c.value for c in at.caption)
    mae = _metrics(at)["MAE"]
    assert mae["baseline"] in ("zero", "past_rate", "btyd")
    card = at.session_state["train_result"].card
    # a warning for each metric the model does not beat, shown above the table
    assert [w.value for w in at.warning] == card.warnings


def test_ltv_with_the_btyd_pair(page):
    at = page("pages/train.py").run()
    at.radio(key="train_kind").set_value("ltv").run()
    at.selectbox(key="train_estimator_ltv").select("btyd").run()
    at.toggle(key="train_auto_cutoff").set_value(False).run()
    at.date_input(key="train_cutoff").set_value("2026-02-01").run()
    at.number_input(key="train_horizon").set_value(60).run()
    at.button(key="train_run").click().run()
    assert not at.exception, at.exception
    metrics = _metrics(at)
    assert "normalised Gini" in metrics and "ROC AUC" in metrics
    assert metrics["normalised Gini"]["reference"] != "—"
    assert len(at.get("plotly_chart")) == 6  # churn: 3, LTV: deciles, revenue gain, scatter
    assert any("cutoff 2026-02-01" in c.value for c in at.caption)


def test_compare_two_saved_versions_and_activate_one(page, duckdb_wh, tmp_path):
    registry = Registry(tmp_path / "models")
    for estimator in ("logistic", "gbm"):
        train_model(duckdb_wh, kind="churn", estimator=estimator, registry=registry)
    at = page("pages/train.py").run()
    at.selectbox(key="train_compare_a").select("churn@1").run()
    at.selectbox(key="train_compare_b").select("churn@2").run()
    compare = next(d.value for d in at.dataframe if "churn@2" in d.value.columns)
    row = compare.set_index("").loc["estimator"]
    assert (row["churn@1"], row["churn@2"]) == ("logistic", "gbm")
    assert "ROC AUC" in compare[""].tolist()

    at.selectbox(key="train_activate_ref").select("churn@1").run()
    at.button(key="train_activate").click().run()
    assert not at.exception
    assert registry.active("churn").version == 1
    assert any("churn@1 is now the active 'churn' model" in s.value for s in at.success)
    # the table drawn after the click already shows it
    versions = next(d.value for d in at.dataframe if "created" in d.value.columns)
    assert versions.set_index("model")["active"].to_dict() == {"churn@1": True, "churn@2": False}


def test_a_mapping_that_cannot_work_shows_why_and_no_cutoff(page):
    at = page("pages/train.py").run()
    # only columns of a fitting type are offered: no text column as revenue
    assert "currency" not in at.selectbox(key="train_map_order_revenue").options
    at.selectbox(key="train_map_orders_table").select("pages").run()  # no numeric column
    assert not at.exception, at.exception
    assert any("Order revenue: choose one" in e.value for e in at.error)
    assert "train_auto_cutoff" not in {t.key for t in at.toggle}
    assert any("cutoff appears once" in c.value for c in at.caption)
    assert at.button(key="train_run").disabled


def test_without_sample_truth_there_is_no_reference_column(page, duckdb_wh, tmp_path):
    duckdb_wh.con.drop_table("sample_truth")
    at = page("pages/train.py", settings=Settings(models_dir=tmp_path / "m"))
    at.run()
    at.selectbox(key="train_estimator_churn").select("logistic").run()
    at.button(key="train_run").click().run()
    assert not at.exception, at.exception
    frame = next(d.value for d in at.dataframe if "metric" in d.value.columns)
    assert "reference" not in frame.columns
    assert any("No reference predictor" in c.value for c in at.caption)


def test_the_btyd_pair_is_saved_under_its_own_name_once(page, tmp_path):
    at = page("pages/train.py").run()
    at.radio(key="train_kind").set_value("ltv").run()
    assert at.text_input(key="train_name_ltv_auto").value == "ltv"
    at.selectbox(key="train_estimator_ltv").select("btyd").run()
    # the name trait sets score it by ("also = ['btyd']"), not a new version of "ltv"
    assert at.text_input(key="train_name_ltv_btyd").value == "btyd"
    at.button(key="train_run").click().run()
    assert not at.exception, at.exception
    # the next step sits under the result's title, before the charts
    assert any("Not saved yet" in c.value for c in at.caption)
    at.button(key="train_save").click().run()
    assert not at.exception, at.exception
    assert any("Saved as btyd@1" in s.value for s in at.success)
    # saved: the button is gone, so a second click cannot save a second version
    assert "train_save" not in {b.key for b in at.button}
    assert [c.ref for c in Registry(tmp_path / "models").list()] == ["btyd@1"]
    # one version: nothing to compare yet
    assert "train_compare_a" not in {s.key for s in at.selectbox}
    assert any("Save a second model of one kind to compare" in c.value for c in at.caption)
    params = next(d.value for d in at.dataframe if "parameter" in d.value.columns)
    assert set(params["parameter"]) == {"r", "alpha", "a", "b", "p", "q", "v"}


def test_a_feature_spec_typed_on_the_page_trains_and_shows(page):
    at = page("pages/train.py").run()
    at.selectbox(key="train_estimator_churn").select("logistic").run()
    at.text_area(key="train_feature_spec").input(
        '[[aggregate]]\nname = "searches_30d"\ntable = "tracks"\nwindow_days = 30\n'
        'where = { event = "Products Searched" }\n'
    ).run()
    assert any("Adds searches_30d." in c.value for c in at.caption)
    at.button(key="train_run").click().run()
    assert not at.exception, at.exception
    card = at.session_state["train_result"].card
    assert card.features[-1] == "searches_30d" and card.feature_spec["aggregate"]
    assert any(
        "Own features (beside the built-in set): searches_30d" in c.value for c in at.caption
    )


def test_a_bad_feature_spec_is_a_message(page):
    at = page("pages/train.py").run()
    at.text_area(key="train_feature_spec").input('[[aggregate]]\nname = "x"\nfunction = "median"\n')
    at.run()
    assert not at.exception
    assert any("feature spec" in e.value for e in at.error)


def test_the_guided_path_sets_up_exactly_the_models_the_trait_set_needs(page, trained, tmp_path):
    at = page("pages/train.py").run()
    assert not at.exception, at.exception
    assert "Trait set **churn** needs 3 models; 3 to train" in at.info[0].value
    labels = [b.label for b in at.button if b.key.startswith("train_prepare_")]
    assert labels == ["Set up churn", "Set up ltv", "Set up btyd"]
    at.button(key="train_prepare_btyd").click().run()  # btyd: the BG/NBD pair, p_alive
    assert not at.exception, at.exception
    assert at.radio(key="train_kind").value == "ltv"
    assert at.selectbox(key="train_estimator_ltv").value == "btyd"
    assert at.text_input(key="train_name_ltv_btyd").value == "btyd"

    shutil.copytree(trained[0].root, tmp_path / "models")  # churn, ltv and btyd saved
    done = page("pages/train.py").run()
    assert "has every model it needs" in done.success[0].value
    assert any(c.value.startswith("Score profiles") for c in done.caption)  # the next step


def test_compare_pairs_models_of_one_kind_and_a_result_stays_with_its_kind(page, trained, tmp_path):
    shutil.copytree(trained[0].root, tmp_path / "models")  # churn, churn-gbm, ltv, btyd
    at = page("pages/train.py").run()
    # not churn against ltv (every cell a dash): two models of one kind
    pair = (at.selectbox(key="train_compare_a").value, at.selectbox(key="train_compare_b").value)
    assert pair == ("churn@1", "churn-gbm@1")
    assert at.selectbox(key="train_compare_b").options == ["churn-gbm@1"]
    compare = next(d.value for d in at.dataframe if "churn-gbm@1" in d.value.columns)
    assert "None" not in compare.to_string()

    at.selectbox(key="train_estimator_churn").select("logistic").run()
    at.button(key="train_run").click().run()
    assert at.get("plotly_chart")
    at.radio(key="train_kind").set_value("ltv").run()
    assert not at.get("plotly_chart")  # the churn result is not shown under the LTV form
    assert any("choose *churn* above to see it" in c.value for c in at.caption)


def test_the_guided_path_says_a_renamed_column_needs_an_edit_and_takes_its_horizon(
    page, trained, tmp_path, project
):
    shutil.copytree(trained[0].root, tmp_path / "models")  # churn (90 days), ltv and btyd saved
    path = project / "traitsets" / "churn.toml"
    shipped = path.read_text()
    path.write_text(shipped.replace("churn_probability_90d", "churn_probability"))  # up to 0.1.0
    at = page("pages/train.py").run()
    assert not at.exception, at.exception
    assert "churn@1 does not write churn_probability" in " ".join(c.value for c in at.caption)
    (warning,) = at.warning
    assert warning.value.startswith(
        "Trait set **churn** reads churn_probability: the model now writes 'churn_probability_90d'"
    ) and warning.value.endswith("Edit it on the Preview page.")

    # a trait set that reads a 180-day score sets the form up for a 180-day model
    path.write_text(shipped.replace("churn_probability_90d", "churn_probability_180d"))
    at = page("pages/train.py").run()
    assert not at.exception, at.exception
    assert not at.warning  # nothing renamed: the saved 90-day model is simply not the one
    at.button(key="train_prepare_churn").click().run()
    assert not at.exception, at.exception
    assert at.session_state["train_horizon"] == 180
