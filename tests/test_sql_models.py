"""The pipeline-to-Ibis translator: every supported step and estimator, computed in DuckDB and
PostgreSQL, must match scikit-learn within 1e-9 on every row; everything else must say why not."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import (
    GammaRegressor,
    Lasso,
    LinearRegression,
    LogisticRegression,
    PoissonRegressor,
    Ridge,
    TweedieRegressor,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    PolynomialFeatures,
    RobustScaler,
    StandardScaler,
)

from sqltraits_kit.modelling.features import build_features, build_labels, data_end
from sqltraits_kit.traits.sql_models import NotTranslatable, pipeline_to_ibis, translatable

TOLERANCE = 1e-9


def _cutoff(wh) -> dt.datetime:
    end = data_end(wh)
    return dt.datetime(end.year, end.month, end.day) - dt.timedelta(days=180)


@pytest.fixture
def training(wh):
    """Features and labels at a cutoff, pulled once per test (2,000 profiles)."""
    cutoff = _cutoff(wh)
    feats = build_features(wh, as_of=cutoff)
    labels = build_labels(wh, cutoff=cutoff, horizon_days=90)
    frame = feats.join(labels, "profile_id").order_by("profile_id").to_pandas()
    columns = [c for c in feats.columns if c != "profile_id"]
    return feats, frame, columns


def _with_nulls(wh, feats, name: str):
    """The features as a warehouse table with NULLs in two columns (every 7th and 11th row)."""
    import ibis

    numbered = feats.mutate(_rn=ibis.row_number().over(order_by=feats.profile_id))
    holed = numbered.mutate(
        revenue_mean=ibis.ifelse(
            numbered._rn % 7 == 0, ibis.null("float64"), numbered.revenue_mean
        ),
        orders_30d=ibis.ifelse(numbered._rn % 11 == 0, ibis.null("int64"), numbered.orders_30d),
    ).drop("_rn")
    return wh.con.create_table(name, holed)


def _sql_vs_sklearn(table, model, columns, output) -> float:
    expr = pipeline_to_ibis(model, table, features=columns, output=output)
    got = table.select("profile_id", *columns, _score=expr).order_by("profile_id").to_pandas()
    X = got[columns].astype(float)
    if output == "proba":
        want = model.predict_proba(X)[:, list(model.classes_).index(1)]
    else:
        want = model.predict(X)
    assert not np.isnan(want).any()
    return float(np.max(np.abs(got["_score"].to_numpy(float) - want)))


def arcsinh() -> FunctionTransformer:
    return FunctionTransformer(np.arcsinh, feature_names_out="one-to-one")


CLASSIFIERS = {
    "scaler+logistic": lambda: Pipeline(
        [("scale", StandardScaler()), ("model", LogisticRegression(max_iter=2000))]
    ),
    "arcsinh+scaler+logistic (training's pipeline)": lambda: Pipeline(
        [("asinh", arcsinh()), ("scale", StandardScaler()), ("model", LogisticRegression(C=1.0))]
    ),
    "log1p+robust+logistic": lambda: Pipeline(
        [
            ("unit", MinMaxScaler()),  # log1p needs x > -1 (the trend features are not)
            ("log", FunctionTransformer(np.log1p)),
            ("scale", RobustScaler()),
            ("model", LogisticRegression(C=0.5, max_iter=2000)),
        ]
    ),
    "nested pipeline+maxabs": lambda: Pipeline(
        [
            ("front", Pipeline([("asinh", arcsinh()), ("passthrough", "passthrough")])),
            ("scale", MaxAbsScaler()),
            ("model", LogisticRegression(max_iter=2000)),
        ]
    ),
}

REGRESSORS = {
    "scaler+ridge": lambda: Pipeline([("scale", StandardScaler()), ("model", Ridge(alpha=2.0))]),
    "minmax(clip)+linear": lambda: Pipeline(
        [("scale", MinMaxScaler(clip=True)), ("model", LinearRegression())]
    ),
    "arcsinh+scaler+poisson (training's LTV pipeline)": lambda: Pipeline(
        [
            ("asinh", arcsinh()),
            ("scale", StandardScaler()),
            ("model", PoissonRegressor(alpha=1e-4, max_iter=1000)),
        ]
    ),
    "robust+lasso": lambda: Pipeline(
        [("scale", RobustScaler()), ("model", Lasso(alpha=0.5, max_iter=20_000))]
    ),
    "sqrt+scaler+gamma": lambda: Pipeline(
        [
            ("unit", MinMaxScaler(clip=True)),  # sqrt needs x >= 0 (the trend features are not)
            ("sqrt", FunctionTransformer(np.sqrt)),
            ("scale", StandardScaler()),
            ("model", GammaRegressor(max_iter=1000)),
        ]
    ),
    "scaler+tweedie(identity)": lambda: Pipeline(
        [("scale", StandardScaler()), ("model", TweedieRegressor(power=0, alpha=0.1))]
    ),
    "bare linear regression": lambda: LinearRegression(),
}


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_classifier_probabilities_match_sklearn(wh, training, name):
    feats, frame, columns = training
    model = CLASSIFIERS[name]().fit(frame[columns], frame["churned"])
    assert translatable(model, features=columns, output="proba") is None
    assert _sql_vs_sklearn(feats, model, columns, "proba") <= TOLERANCE


@pytest.mark.parametrize("name", list(REGRESSORS))
def test_regressor_predictions_match_sklearn(wh, training, name):
    feats, frame, columns = training
    y = frame["ltv"].to_numpy(float)
    if "gamma" in name:
        y = y + 1.0  # a Gamma GLM needs a positive target
    model = REGRESSORS[name]().fit(frame[columns], y)
    assert _sql_vs_sklearn(feats, model, columns, "predict") <= TOLERANCE


@pytest.mark.parametrize("strategy", ["mean", "median", "constant"])
def test_imputer_fills_nulls_like_sklearn_fills_nan(wh, training, unique_name, strategy):
    feats, frame, columns = training
    table = _with_nulls(wh, feats, unique_name)
    pulled = table.order_by("profile_id").to_pandas()
    assert pulled["revenue_mean"].isna().sum() > 100 and pulled["orders_30d"].isna().sum() > 100
    model = Pipeline(
        [
            ("impute", SimpleImputer(strategy=strategy, fill_value=-1.5)),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(max_iter=2000)),
        ]
    ).fit(pulled[columns].astype(float), frame["churned"])
    assert _sql_vs_sklearn(table, model, columns, "proba") <= TOLERANCE


def test_extreme_logits_neither_overflow_nor_drift(wh, unique_name):
    """exp() of a large number fails on PostgreSQL: the sigmoid must never compute one."""
    x = np.array([-1e6, -800.0, -40.0, -1e-9, 0.0, 3.0, 40.0, 800.0, 1e6])
    table = wh.con.create_table(
        unique_name, pd.DataFrame({"profile_id": [f"p{i}" for i in range(x.size)], "x": x})
    )
    model = LogisticRegression().fit(pd.DataFrame({"x": [-1.0, -0.5, 0.5, 1.0]}), [0, 0, 1, 1])
    model.coef_ = np.array([[1.0]])
    model.intercept_ = np.array([0.0])
    assert _sql_vs_sklearn(table, model, ["x"], "proba") <= TOLERANCE


def test_arcsinh_is_accurate_for_negative_tiny_and_huge_values(wh, unique_name):
    x = np.array([-1e300, -1e12, -3.0, -1e-12, 0.0, 1e-12, 2.5, 1e8 - 1, 1e8 + 1, 1e15, 1e300])
    table = wh.con.create_table(
        unique_name, pd.DataFrame({"profile_id": [f"p{i}" for i in range(x.size)], "x": x})
    )
    model = Pipeline([("asinh", FunctionTransformer(np.arcsinh)), ("model", LinearRegression())])
    model.fit(pd.DataFrame({"x": [0.0, 1.0, 2.0]}), [0.0, 1.0, 2.0])
    model[-1].coef_, model[-1].intercept_ = np.array([1.0]), 0.0
    expr = pipeline_to_ibis(model, table, features=["x"])
    got = table.select("profile_id", y=expr).order_by("profile_id").to_pandas()
    order = np.argsort([f"p{i}" for i in range(x.size)])
    want = np.arcsinh(x[order])
    np.testing.assert_allclose(got["y"].to_numpy(float), want, rtol=1e-14, atol=1e-15)


def test_class_labels_other_than_0_1_order(wh, training):
    feats, frame, columns = training
    # classes_ = [1, 2]: the probability of class 1 is the *first* column
    y = np.where(frame["churned"] == 1, 1, 2)
    model = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])
    model.fit(frame[columns], y)
    expr = pipeline_to_ibis(model, feats, features=columns, output="proba", positive_class=1)
    got = feats.select("profile_id", *columns, p=expr).order_by("profile_id").to_pandas()
    want = model.predict_proba(got[columns])[:, 0]
    assert np.max(np.abs(got["p"].to_numpy(float) - want)) <= TOLERANCE


@pytest.mark.parametrize(
    ("model", "output", "reason"),
    [
        (HistGradientBoostingClassifier(max_iter=5), "proba", "HistGradientBoostingClassifier"),
        (
            Pipeline([("exp", FunctionTransformer(np.exp)), ("m", LinearRegression())]),
            "predict",
            "numpy.exp",
        ),
        (
            Pipeline([("poly", PolynomialFeatures()), ("m", LinearRegression())]),
            "predict",
            "PolynomialFeatures",
        ),
        (
            Pipeline([("impute", SimpleImputer(add_indicator=True)), ("m", LinearRegression())]),
            "predict",
            "add_indicator",
        ),
        (
            Pipeline([("ct", ColumnTransformer([("s", StandardScaler(), [0])])), ("m", Ridge())]),
            "predict",
            "ColumnTransformer",
        ),
        (LogisticRegression(), "proba", "3 classes"),
        (LinearRegression(), "proba", "no class probabilities"),
    ],
    ids=["gbm", "exp", "poly", "indicator", "column-transformer", "multiclass", "regressor-proba"],
)
def test_untranslatable_models_say_why(model, output, reason):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    y = np.arange(60) % 3 if reason == "3 classes" else (X["a"] > 0).astype(int)
    model.fit(X, y)
    why = translatable(model, features=["a", "b"], output=output)
    assert why is not None and reason in why
    import ibis

    with pytest.raises(NotTranslatable, match=reason.split()[0]):
        pipeline_to_ibis(model, ibis.table({"a": "float64", "b": "float64"}), output=output)


def test_feature_names_must_match_the_card():
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [1.0, 0.0, 1.0]})
    model = LinearRegression().fit(X, [0.0, 1.0, 2.0])
    why = translatable(model, features=["b", "a"])
    assert why is not None and "fitted on columns ['a', 'b']" in why
