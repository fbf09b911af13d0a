"""Models for the scoring tests: small pipelines fitted on the sample, and references computed
without the kit's scoring code (scikit-learn's own predict, numpy BTYD)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, PoissonRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from sqltraits_kit.modelling.btyd import rfm_summary
from sqltraits_kit.modelling.features import (
    FEATURE_COLUMNS,
    TableMapping,
    build_features,
    build_labels,
    data_end,
)
from sqltraits_kit.modelling.registry import ModelCard, Registry
from sqltraits_kit.modelling.training import train_model

HORIZON = 90


def _day(when: dt.datetime) -> dt.datetime:
    return dt.datetime(when.year, when.month, when.day)


def card(name: str, kind: str, estimator: str, cutoff: dt.datetime, **extra) -> ModelCard:
    return ModelCard(
        name=name,
        kind=kind,
        estimator=estimator,
        features=list(FEATURE_COLUMNS) if kind != "btyd" else [],
        mapping=TableMapping().to_dict(),
        cutoff=cutoff.date().isoformat(),
        horizon_days=HORIZON,
        metrics={},
        training_rows=0,
        data_fingerprint="test",
        **extra,
    )


def linear_front() -> list:
    # training's linear pipelines: arcsinh, then standard scaling
    return [
        ("arcsinh", FunctionTransformer(np.arcsinh, feature_names_out="one-to-one")),
        ("scale", StandardScaler()),
    ]


def save_models(wh, registry: Registry) -> dict[str, str]:
    """Fit small models on the warehouse's features and save them; returns kind -> reference."""
    from sqltraits_kit.modelling.training import BtydPair, reference_parameters

    cutoff = _day(data_end(wh)) - dt.timedelta(days=2 * HORIZON)
    feats = build_features(wh, as_of=cutoff)
    labels = build_labels(wh, cutoff=cutoff, horizon_days=HORIZON)
    frame = feats.join(labels, "profile_id").order_by("profile_id").to_pandas()
    X = frame[list(FEATURE_COLUMNS)]
    logistic = Pipeline([*linear_front(), ("model", LogisticRegression(max_iter=2000))])
    poisson = Pipeline([*linear_front(), ("model", PoissonRegressor(alpha=1e-4, max_iter=1000))])
    gbm = Pipeline([("model", HistGradientBoostingClassifier(max_iter=30, random_state=0))])
    truth = reference_parameters(wh)
    pair = BtydPair.from_params(
        {
            "bgnbd": {k: truth[k] for k in ("r", "alpha", "a", "b")},
            "gamma_gamma": {k: truth[k] for k in ("p", "q", "v")},
        }
    )
    saved = {
        "churn": registry.save(
            logistic.fit(X, frame["churned"]), card("churn", "churn", "logistic", cutoff)
        ),
        "ltv": registry.save(poisson.fit(X, frame["ltv"]), card("ltv", "ltv", "poisson", cutoff)),
        "gbm": registry.save(
            gbm.fit(X, frame["churned"]), card("churn-gbm", "churn", "gbm", cutoff)
        ),
        "btyd": registry.save(pair, card("btyd", "btyd", "btyd", cutoff)),
    }
    return {k: c.ref for k, c in saved.items()}


def sklearn_reference(wh, registry: Registry, ref: str, as_of) -> pd.Series:
    """Scores computed independently: features pulled to pandas, scikit-learn's own predict."""
    name, _, version = ref.partition("@")
    loaded = registry.load(name, int(version))
    frame = build_features(wh, as_of=as_of).to_pandas().set_index("profile_id")
    X = frame[loaded.card.features]
    if loaded.card.kind == "churn":
        values = loaded.model.predict_proba(X)[:, list(loaded.model.classes_).index(1)]
    else:
        values = np.clip(loaded.model.predict(X), 0.0, None)
    return pd.Series(values, index=frame.index)


def btyd_reference(wh, registry: Registry, ref: str, as_of: dt.datetime) -> pd.DataFrame:
    """BG/NBD + Gamma-Gamma in numpy on an RFM summary pulled to pandas."""
    name, _, version = ref.partition("@")
    pair = registry.load(name, int(version)).model
    users = wh.table("users").filter(lambda t: t.created_at < as_of).to_pandas()
    rfm = rfm_summary(
        wh.table("order_completed"),
        customer_id="user_id",
        timestamp="timestamp",
        amount="revenue",
        calibration_end=(as_of - dt.timedelta(days=1)).date(),
        time_unit="W",
    ).to_pandas()
    frame = users[["id"]].merge(rfm, left_on="id", right_on="customer_id", how="left")
    frame = frame.fillna({"frequency": 0, "recency": 0.0, "T": 0.0, "monetary_value": 0.0})
    x, tx, T, m = (
        frame[c].to_numpy(float) for c in ("frequency", "recency", "T", "monetary_value")
    )
    t = HORIZON / 7.0
    purchases = pair.bgnbd.conditional_expected_purchases(t, x, tx, T)
    return pd.DataFrame(
        {
            "p_alive": pair.bgnbd.probability_alive(x, tx, T),
            "p_no_purchase_90d": pair.bgnbd.probability_no_purchase(t, x, tx, T),
            "expected_purchases_90d": purchases,
            "expected_spend_90d": purchases * pair.gamma_gamma.conditional_expected_spend(x, m),
        },
        index=pd.Index(frame["id"], name="profile_id"),
    )


def output(wh, table: str, id_column: str = "user_id") -> pd.DataFrame:
    return wh.table(table).to_pandas().set_index(id_column)


def max_diff(a: pd.Series, b: pd.Series) -> float:
    a, b = a.align(b, join="outer")
    assert not a.isna().any() and not b.isna().any(), "the profiles differ"
    return float(np.max(np.abs(a.to_numpy(float) - b.to_numpy(float))))


def train_demo_models(wh, root) -> Registry:
    """The three models the example trait sets score (fast estimators: this is a test)."""
    registry = Registry(root)
    train_model(wh, kind="churn", estimator="logistic", name="churn", registry=registry)
    train_model(wh, kind="ltv", estimator="poisson", name="ltv", registry=registry)
    train_model(wh, kind="churn", estimator="btyd", name="btyd", registry=registry)
    return registry


def cdnow_crm_tables() -> dict[str, pd.DataFrame]:
    """CDNOW's purchase log as a CRM would hold it: ``orders`` (order_no, customer_no,
    ordered_at, cds, dollars) and ``customers`` (customer_no, first_order_at); integer ids, no
    activity tables."""
    from tests.support import ROOT

    raw = pd.read_csv(
        ROOT / "tests" / "data" / "cdnow_sample_transactions.txt",
        sep=r"\s+",
        header=None,
        names=["master_id", "customer_no", "date", "cds", "dollars"],
        dtype={"date": str},
    )
    raw["ordered_at"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    orders = raw[["customer_no", "ordered_at", "cds", "dollars"]].copy()
    orders.insert(0, "order_no", range(1, len(orders) + 1))
    customers = orders.groupby("customer_no", as_index=False).agg(
        first_order_at=("ordered_at", "min")
    )
    return {"customers": customers, "orders": orders}


def online_retail_crm_tables() -> dict[str, pd.DataFrame]:
    """UCI's Online Retail log (a UK gift-ware wholesaler, Dec 2010 – Dec 2011) as a CRM would
    hold it: ``orders`` (order_no, customer_id, order_date, amount: one per customer and day)
    and ``customers`` (customer_id, first_order_at, country); integer ids, no activity tables.
    See ``tests/data/README-online-retail.md``."""
    from tests.support import ROOT

    data = ROOT / "tests" / "data"
    orders = pd.read_csv(data / "online_retail_orders.csv.gz", parse_dates=["order_date"])
    orders.insert(0, "order_no", range(1, len(orders) + 1))
    countries = pd.read_csv(data / "online_retail_customers.csv.gz")
    first = orders.groupby("customer_id", as_index=False).agg(first_order_at=("order_date", "min"))
    customers = first.merge(countries, on="customer_id", how="left", validate="one_to_one")
    return {"customers": customers, "orders": orders}


def spy_scoring_threads(monkeypatch: Any) -> list[int | None]:
    """Record the ``threads`` the streamed path asks :func:`in_threads` for, one per stream."""
    import sqltraits_kit.traits.scoring.scratch as scratch

    asked: list[int | None] = []
    real = scratch.in_threads

    def spy(compute: Any, batches: Any, *, threads: int | None = None) -> Any:
        asked.append(threads)
        return real(compute, batches, threads=threads)

    monkeypatch.setattr(scratch, "in_threads", spy)
    return asked
