"""Your own model: a pipeline fitted in a notebook on the kit's features, registered with
Registry.register, gets a card of out-of-time figures computed by the kit, loads with the same
checks as the kit's models, and scores like them."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
import pytest
import skops.io as sio
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from sqltraits_kit.errors import ConfigError, ModelLoadError
from sqltraits_kit.modelling.features import build_features, build_labels
from sqltraits_kit.modelling.registry import TRUSTED_TYPES, Registry

TRAINED_UNTIL = dt.date(2026, 5, 1)  # the outcomes it was fitted on end here
SPEC = {
    "aggregate": [{"name": "searches", "table": "tracks", "where": {"event": "Products Searched"}}]
}


def _notebook_model(wh, model=None):
    """What a data scientist does: features at a cutoff, outcomes over the next 90 days, fit."""
    cutoff = TRAINED_UNTIL - dt.timedelta(days=90)
    X = build_features(wh, as_of=cutoff, spec=SPEC).join(
        build_labels(wh, cutoff=cutoff, horizon_days=90), "profile_id"
    )
    frame = X.to_pandas()
    columns = ["orders_count", "days_since_last_order", "tracks_30d", "searches"]
    model = model or Pipeline(
        [
            ("impute", SimpleImputer()),
            ("forest", RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0)),
        ]
    )
    return model.fit(frame[columns], frame["churned"]), columns


def test_an_outside_pipeline_gets_a_card_and_scores_like_the_kits(duckdb_wh, tmp_path, monkeypatch):
    from sqltraits_kit.traits.scoring import score

    model, columns = _notebook_model(duckdb_wh)
    registry = Registry(tmp_path)
    card = registry.register(
        model,
        wh=duckdb_wh,
        name="churn_forest",
        kind="churn",
        trained_until=TRAINED_UNTIL,
        feature_spec=SPEC,
    )
    assert card.version == 1 and card.estimator == "outside:Pipeline"
    assert card.features == columns and card.feature_spec["aggregate"][0]["name"] == "searches"
    assert card.test_cutoff == TRAINED_UNTIL.isoformat()  # tested after its training only
    assert card.origin["class"] == "sklearn.pipeline.Pipeline"
    assert card.origin["trained_until"] == TRAINED_UNTIL.isoformat()
    # its own out-of-time figures, computed by the kit, beside the baselines and the reference
    assert 0.6 < card.metrics["auc"] < 1 and "reference_auc" in card.metrics
    assert set(card.baselines) == {"recency", "recency_frequency", "btyd"}
    assert {row["metric"] for row in card.comparison} >= {"auc", "brier"}
    expected = build_features(duckdb_wh, as_of=TRAINED_UNTIL, spec=SPEC).join(
        build_labels(duckdb_wh, cutoff=TRAINED_UNTIL, horizon_days=90), "profile_id"
    )
    frame = expected.to_pandas()
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(frame["churned"], model.predict_proba(frame[columns])[:, 1])
    assert card.metrics["auc"] == pytest.approx(auc, abs=1e-12)

    loaded = registry.load("churn_forest")
    from tests.support.models import spy_scoring_threads

    asked = spy_scoring_threads(monkeypatch)
    run = score(duckdb_wh, models="churn_forest", registry=registry, table="forest_scores")
    assert asked == [1]  # an outside pipeline is not assumed thread-safe: one batch at a time
    assert run.models[0].path == "streamed"  # a forest has no SQL form: streamed
    scored = duckdb_wh.table("forest_scores").to_pandas().set_index("user_id")
    X = build_features(duckdb_wh, as_of=run.as_of, spec=SPEC).to_pandas().set_index("profile_id")
    direct = loaded.model.predict_proba(X.loc[scored.index, columns])[:, 1]
    np.testing.assert_allclose(scored["churn_probability_90d"], direct, atol=1e-12)


def test_a_crafted_forest_is_refused_at_load(duckdb_wh, tmp_path):
    model, _ = _notebook_model(duckdb_wh)
    registry = Registry(tmp_path)
    card = registry.register(
        model, wh=duckdb_wh, name="forest", kind="churn", trained_until=TRAINED_UNTIL,
        feature_spec=SPEC,
    )  # fmt: skip
    path = tmp_path / "forest" / "v1" / "model.skops"
    edited = sio.loads(path.read_bytes(), trusted=list(TRUSTED_TYPES))
    tree = edited.steps[-1][1].estimators_[3].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    inner = int(np.flatnonzero(nodes["left_child"] >= 0)[0])
    nodes["left_child"][inner] = 10**6
    tree.__setstate__({**state, "nodes": nodes})
    data = sio.dumps(edited)
    path.write_bytes(data)
    values = json.loads((path.parent / "card.json").read_text())
    values["artifact_sha256"] = hashlib.sha256(data).hexdigest()
    (path.parent / "card.json").write_text(json.dumps(values))
    assert card.version == 1
    with pytest.raises(ModelLoadError, match="estimator 3"):
        registry.load("forest")


def test_what_cannot_be_registered_is_refused_before_any_query(duckdb_wh, tmp_path):
    registry = Registry(tmp_path)
    model, _ = _notebook_model(duckdb_wh)
    with pytest.raises(ConfigError, match="no complete 90-day test window"):
        registry.register(
            model, wh=duckdb_wh, name="late", kind="churn", trained_until="2026-10-01",
            feature_spec=SPEC,
        )  # fmt: skip
    svc, _ = _notebook_model(duckdb_wh, SVC(random_state=0))  # no predict_proba, untrusted
    with pytest.raises(ModelLoadError, match="SVC"):
        registry.register(svc, wh=duckdb_wh, name="svc", kind="churn", trained_until=TRAINED_UNTIL)
    unnamed = RandomForestClassifier(n_estimators=2).fit(np.zeros((4, 2)), [0, 1, 0, 1])
    with pytest.raises(ConfigError, match="without column names"):
        registry.register(
            unnamed, wh=duckdb_wh, name="unnamed", kind="churn", trained_until=TRAINED_UNTIL
        )
    with pytest.raises(ConfigError, match="searches, which the kit's features"):
        registry.register(  # fitted on a spec feature, registered without the spec
            model, wh=duckdb_wh, name="nospec", kind="churn", trained_until=TRAINED_UNTIL
        )
    assert registry.list() == []


@pytest.mark.postgres
def test_registering_on_postgres_gives_the_same_figures(duckdb_wh, postgres_wh, tmp_path):
    model, _ = _notebook_model(duckdb_wh)
    cards = [
        Registry(tmp_path / name).register(
            model,
            wh=wh,
            name="forest",
            kind="churn",
            trained_until=TRAINED_UNTIL,
            feature_spec=SPEC,
        )
        for name, wh in (("duck", duckdb_wh), ("pg", postgres_wh))
    ]
    for key, value in cards[0].metrics.items():
        if isinstance(value, float):
            assert cards[1].metrics[key] == pytest.approx(value, abs=1e-9), key
