"""The candidates: BTYD on the feature table agrees with BTYD on the RFM summary, blends average
their members, and every candidate reads only the columns it names."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from sqltraits_kit.errors import ConfigError, DataError
from sqltraits_kit.modelling.btyd import BetaGeo, ModifiedBetaGeo
from sqltraits_kit.modelling.estimators import (
    BTYD_FEATURES,
    Blend,
    make_estimator,
    rfm_from_features,
)
from sqltraits_kit.modelling.features import build_features
from sqltraits_kit.modelling.pareto_nbd import ParetoNBD
from sqltraits_kit.modelling.rfm import rfm_summary

AS_OF = dt.datetime(2026, 6, 1)


@pytest.fixture(scope="module")
def frames(sample_file):
    from sqltraits_kit.warehouse import connect

    wh = connect(f"duckdb:///{sample_file}", read_only=True)
    try:
        feats = build_features(wh, as_of=AS_OF).to_pandas().set_index("profile_id").sort_index()
        rfm = rfm_summary(
            wh.table("order_completed"),
            customer_id="user_id",
            timestamp="timestamp",
            calibration_end=(AS_OF - dt.timedelta(days=1)).date(),
        ).to_pandas()
    finally:
        wh.close()
    return feats, rfm.set_index("customer_id").reindex(feats.index).fillna(0.0)


def test_rfm_from_features_matches_the_rfm_summary(frames):
    feats, rfm = frames
    x, tx, T = rfm_from_features(feats)
    # The summary counts purchase days and whole days; the features count orders and instants.
    same_day = feats["orders_count"].to_numpy() - 1 != rfm["frequency"].to_numpy()
    buyers = feats["orders_count"].to_numpy() > 0
    assert same_day[buyers].mean() < 0.1  # the sample has a few same-day orders
    keep = buyers & ~same_day
    np.testing.assert_array_equal(x[keep], rfm["frequency"].to_numpy()[keep])
    np.testing.assert_allclose(tx[keep], rfm["recency"].to_numpy()[keep], atol=1 / 7 + 1e-9)
    np.testing.assert_allclose(T[keep], rfm["T"].to_numpy()[keep], atol=1 / 7 + 1e-9)
    assert not x[~buyers].any() and not T[~buyers].any()


@pytest.mark.parametrize(
    ("variant", "cls"), [("bgnbd", BetaGeo), ("mbgnbd", ModifiedBetaGeo), ("pnbd", ParetoNBD)]
)
def test_btyd_on_features_is_the_btyd_model(frames, variant, cls):
    feats, _ = frames
    model = make_estimator("churn", variant, horizon_days=60).fit(feats, None)
    assert list(model.feature_names_in_) == list(BTYD_FEATURES)
    x, tx, T = rfm_from_features(feats)
    buyers = x + T > 0
    direct = cls().fit(x[buyers], tx[buyers], T[buyers])
    assert model.bgnbd_params_ == pytest.approx(direct.params_)
    expected = direct.probability_no_purchase(60 / 7, x, tx, T)
    np.testing.assert_allclose(model.predict_proba(feats)[:, 1], expected)
    ltv = make_estimator("ltv", variant, horizon_days=60).fit(feats, None)
    assert list(ltv.feature_names_in_) == [*BTYD_FEATURES, "revenue_mean"]
    assert (ltv.predict(feats) >= 0).all()


def test_a_blend_is_the_mean_of_its_members(frames):
    feats, _ = frames
    y = (feats["days_since_last_order"] > 60).astype(int).to_numpy()
    members = {
        "logistic": make_estimator("churn", "logistic").fit(feats, y),
        "mbgnbd": make_estimator("churn", "mbgnbd").fit(feats, y),
    }
    blend = Blend.of("churn", members)
    assert list(blend.feature_names_in_) == list(feats.columns)
    expected = np.mean([m.predict_proba(feats[list(m.feature_names_in_)])[:, 1]
                        for m in members.values()], axis=0)  # fmt: skip
    np.testing.assert_allclose(blend.predict_proba(feats)[:, 1], expected)
    with pytest.raises(NotImplementedError, match=r"built from fitted members with Blend\.of"):
        blend.fit(feats, y)


def test_unfittable_data_and_unknown_names_are_explained():
    empty = pd.DataFrame({c: [0, 0] for c in (*BTYD_FEATURES, "revenue_mean")})
    with pytest.raises(DataError, match="no profile has an order"):
        make_estimator("churn", "bgnbd").fit(empty, None)
    with pytest.raises(ConfigError, match="no estimator 'forest' for 'ltv'"):
        make_estimator("ltv", "forest")


LINEAR = [("churn", "logistic"), ("ltv", "poisson"), ("ltv", "tweedie")]


@pytest.mark.parametrize(("kind", "name"), LINEAR)
def test_linear_candidates_hold_each_column_to_its_training_range(kind, name):
    # Fitted where two columns are equal (windowed features on a short history), a log-link
    # GLM learns weights that cancel; a profile outside that range must not make them explode.
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"orders": rng.poisson(2.0, 400).astype(float) + 1.0})
    X["orders_90d"] = X["orders"]
    X["revenue"] = X["orders"] * rng.gamma(2.0, 50.0, 400)
    y = rng.poisson(X["orders"]) * 40.0 if kind == "ltv" else rng.integers(0, 2, 400)
    model = make_estimator(kind, name).fit(X, y)
    far = pd.DataFrame({"orders": [500.0], "orders_90d": [0.0], "revenue": [1e7]})
    held = pd.DataFrame([X.max()])  # each column at the edge of its training range
    held["orders_90d"] = X["orders_90d"].min()
    out = model.predict_proba if kind == "churn" else model.predict
    np.testing.assert_allclose(out(far), out(held), rtol=1e-12)
    assert np.all(np.isfinite(out(far)))
