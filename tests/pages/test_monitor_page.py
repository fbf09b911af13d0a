"""The Monitor page: a trait set with a holdout, published from scores whose horizon has
passed; the page computes the outcomes and shows the runs, the chart and the uplift."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil

from sqltraits_kit.modelling.features import data_end
from sqltraits_kit.modelling.registry import Registry
from sqltraits_kit.publishing.sync import sync
from sqltraits_kit.settings import Settings
from sqltraits_kit.traits.scoring import score
from sqltraits_kit.traits.traitset import TraitSet
from tests.support.sync import make_client

SPEC = {
    "name": "churn",
    "table": "churn_traits",
    "traits": {"churn_probability_90d": "churn_probability"},
    "derived": [
        {
            "name": "churn_risk_tier",
            "type": "tiers",
            "column": "churn_probability_90d",
            "thresholds": [0.5],
            "labels": ["low", "high"],
        }
    ],
    "holdout": {"share": 0.3, "salt": "page"},
}


def test_the_monitor_page_judges_published_runs(
    page, duckdb_wh, trained, tmp_path, segment_server, monkeypatch
):
    registry, refs = trained
    models = tmp_path / "models"
    shutil.copytree(registry.root, models)
    card = Registry(models).card(*refs["churn"].split("@"))
    card_with_figures = dataclasses.replace(card, metrics={"auc": 0.99, "brier": 0.01})
    (models / "churn" / f"v{card.version}" / "card.json").write_text(card_with_figures.to_json())
    end = data_end(duckdb_wh)
    as_of = dt.datetime(end.year, end.month, end.day) - dt.timedelta(days=120)
    score(duckdb_wh, models=refs["churn"], table="churn_traits", registry=models,
          as_of=as_of, method="streamed")  # fmt: skip
    ts = TraitSet.from_dict(SPEC)
    run = sync(duckdb_wh, ts, client=make_client(segment_server, []), allow_drift=True)
    folder = tmp_path / "traitsets"
    ts.dump(folder / "churn.toml")
    monkeypatch.setenv("SQLTRAITS_PROJECT_DIR", str(tmp_path))  # the project: its traitsets/

    settings = Settings(db_url=duckdb_wh.url, models_dir=models)
    at = page("pages/monitor.py", settings=settings).run()
    assert not at.exception, at.exception
    at.button(key="monitor_compute").click().run()
    assert not at.exception, at.exception
    runs = next(d.value for d in at.dataframe if "scores as of" in d.value.columns)
    row = runs.set_index("run").loc[run.run_id]
    assert row["status"] == "evaluated" and row["scores as of"] == as_of.date().isoformat()
    assert 0.5 < row["auc"] < 0.99 and row["auc (card)"] == 0.99
    assert "auc" in row["flagged"]  # the card claims 0.99: live is far below it
    assert any("below the model card" in e.value for e in at.error)
    uplift = next(d.value for d in at.dataframe if "treated" in d.value.columns)
    assert list(uplift["tier"]) == ["all", "high", "low"]
    assert len(at.get("plotly_chart")) == 3  # the metric over time, two uplift charts
