"""The candidate models a churn or LTV model is chosen from, all scikit-learn compatible.

Every candidate takes columns of the kit's feature table (:func:`~sqltraits_kit.modelling.features.
build_features`) and nothing else, so whichever wins is scored like any other model: in the
warehouse when it translates to SQL (the linear models), streamed otherwise.

Families, each with a reason to be there:

* **linear** — logistic regression (churn), Poisson and Tweedie GLMs (LTV) on arcsinh-scaled
  features: stable on small data, extrapolate smoothly, translate to SQL.
* **trees** — histogram gradient boosting, in two sizes: ``gbm`` (deep enough for many
  features and many profiles) and ``gbm_small`` (shallow, large leaves: for a few thousand
  profiles or a handful of useful features).
* **btyd** — BG/NBD, the modified BG/NBD and Pareto/NBD (plus Gamma-Gamma for LTV) fitted on
  the order history the feature table carries (:class:`BtydOnFeatures`): few parameters, no
  labels needed. Pareto/NBD lets a customer leave at any time, not only right after a purchase.
* **blend** — the mean of the best member of each family on the validation window
  (:class:`Blend`): different mistakes average out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from sqltraits_kit.errors import ConfigError, DataError

__all__ = [
    "BTYD_FEATURES",
    "BTYD_VARIANTS",
    "CANDIDATES",
    "FAMILIES",
    "Blend",
    "BtydOnFeatures",
    "make_estimator",
    "rfm_from_features",
]

#: The BTYD candidates, each fitted on one snapshot's order history (no labels).
BTYD_VARIANTS = ("bgnbd", "mbgnbd", "pnbd")
#: The candidates ``estimator="auto"`` trains, per kind, in the order ties are broken.
CANDIDATES: dict[str, tuple[str, ...]] = {
    "churn": ("logistic", "gbm", "gbm_small", *BTYD_VARIANTS, "blend"),
    "ltv": ("poisson", "tweedie", "gbm", "gbm_small", *BTYD_VARIANTS, "blend"),
}
#: The families a blend takes its members from (the best of each on validation).
FAMILIES: dict[str, tuple[tuple[str, ...], ...]] = {
    "churn": (("logistic",), ("gbm", "gbm_small"), BTYD_VARIANTS),
    "ltv": (("poisson", "tweedie"), ("gbm", "gbm_small"), BTYD_VARIANTS),
}
#: The feature columns the BTYD candidates read (LTV also reads ``revenue_mean``).
BTYD_FEATURES = ("orders_count", "days_since_first_order", "days_since_last_order")
_GBM = {
    "max_iter": 300,
    "learning_rate": 0.1,
    "min_samples_leaf": 50,
    "l2_regularization": 1.0,
    "early_stopping": True,
    "validation_fraction": 0.1,
    "n_iter_no_change": 10,
}
_GBM_SMALL = {**_GBM, "max_depth": 3, "min_samples_leaf": 200, "learning_rate": 0.05}


def make_estimator(kind: str, estimator: str, *, seed: int = 0, horizon_days: int = 90) -> Any:
    """A fresh, unfitted candidate for ``kind`` (churn | ltv) named ``estimator``."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, PoissonRegressor, TweedieRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler

    def linear(model: Any) -> Any:
        # arcsinh tames heavy-tailed counts and revenue like a log, and is defined for the
        # negative trend features too. Each column is then held to the range it had in
        # training (clip=True), so a profile older or busier than any the model saw cannot push
        # a log-link GLM's exp(eta) further than the edge of that range. A guard, not a cure:
        # in-range columns in an unseen mix can still explode a GLM fitted on degenerate rows,
        # which is why training leaves out rows the log is too young for.
        return Pipeline(
            [
                ("arcsinh", FunctionTransformer(np.arcsinh, feature_names_out="one-to-one")),
                ("bound", MinMaxScaler(clip=True)),
                ("scale", StandardScaler()),
                ("model", model),
            ]
        )

    trees = {"gbm": _GBM, "gbm_small": _GBM_SMALL}
    if estimator in BTYD_VARIANTS and kind in ("churn", "ltv"):
        return BtydOnFeatures(kind=kind, variant=estimator, horizon_days=horizon_days)
    if kind == "churn" and estimator == "logistic":
        return linear(LogisticRegression(C=1.0, max_iter=2000))
    if kind == "churn" and estimator in trees:
        return Pipeline(
            [("model", HistGradientBoostingClassifier(**trees[estimator], random_state=seed))]
        )
    if kind == "ltv" and estimator == "poisson":
        # Newton-Cholesky: a handful of iterations where L-BFGS needs hundreds on revenue.
        return linear(PoissonRegressor(alpha=1e-4, solver="newton-cholesky", max_iter=300))
    if kind == "ltv" and estimator == "tweedie":
        # Power 1.5: a compound Poisson-Gamma, mass at 0 plus a skewed positive part.
        glm = TweedieRegressor(
            power=1.5, link="log", alpha=1e-4, solver="newton-cholesky", max_iter=300
        )
        return linear(glm)
    if kind == "ltv" and estimator in trees:
        model = HistGradientBoostingRegressor(loss="poisson", **trees[estimator], random_state=seed)
        return Pipeline([("model", model)])
    known = ", ".join(c for c in CANDIDATES.get(kind, ()) if c != "blend")
    raise ConfigError(f"no estimator {estimator!r} for {kind!r} models (choose from: {known})")


def rfm_from_features(X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD's (frequency, recency, T) in weeks from the feature table's order columns.

    ``frequency`` counts the orders after the first (two orders on one day count twice, where
    :func:`~sqltraits_kit.modelling.rfm.rfm_summary` merges them); a profile without an order is
    a brand-new customer, (0, 0, 0).
    """
    n = X["orders_count"].to_numpy(dtype=float)
    first = X["days_since_first_order"].to_numpy(dtype=float)
    last = X["days_since_last_order"].to_numpy(dtype=float)
    buyer = n > 0
    x = np.where(buyer, n - 1, 0.0)
    T = np.where(buyer, np.maximum(first, 0.0), 0.0) / 7.0
    # Recency can exceed T by a rounding error only; clip so the model's checks hold.
    tx = np.clip(np.where(buyer, first - last, 0.0) / 7.0, 0.0, T)
    return x, tx, T


class BtydOnFeatures:
    """BG/NBD, modified BG/NBD or Pareto/NBD (with Gamma-Gamma for LTV) as a scikit-learn
    estimator.

    ``fit`` ignores the labels: the models are fitted by maximum likelihood on the order history
    (profiles with at least one order). Churn predicts P(no order in the next ``horizon_days``)
    as class 1; LTV predicts expected purchases times expected spend per order, Gamma-Gamma
    being fitted on every order's mean value (the feature table has no first-order value to
    leave out, as the paper does). Fitted parameters are plain dicts, so the artifact holds no
    type beyond this class; ``bgnbd_params_`` holds the purchase model's, whichever variant
    (Pareto/NBD's are r, alpha, s, beta).
    """

    def __init__(self, *, kind: str = "churn", variant: str = "bgnbd", horizon_days: int = 90):
        self.kind = kind
        self.variant = variant
        self.horizon_days = horizon_days

    def __repr__(self) -> str:
        return f"BtydOnFeatures(kind={self.kind!r}, variant={self.variant!r})"

    def _columns(self) -> list[str]:
        return [*BTYD_FEATURES, *(["revenue_mean"] if self.kind == "ltv" else [])]

    def _purchase_model(self) -> Any:
        from sqltraits_kit.modelling.btyd import BetaGeo, ModifiedBetaGeo
        from sqltraits_kit.modelling.pareto_nbd import ParetoNBD

        return {"bgnbd": BetaGeo, "mbgnbd": ModifiedBetaGeo, "pnbd": ParetoNBD}[self.variant]

    def _bg(self) -> Any:
        return self._purchase_model().from_params(**self.bgnbd_params_)

    def fit(self, X: pd.DataFrame, y: Any = None) -> BtydOnFeatures:
        from sqltraits_kit.modelling.btyd import GammaGamma

        if self.kind not in ("churn", "ltv") or self.variant not in BTYD_VARIANTS:
            raise ConfigError(f"BtydOnFeatures: kind={self.kind!r}, variant={self.variant!r}")
        X = X[self._columns()]
        x, tx, T = rfm_from_features(X)
        buyers = X["orders_count"].to_numpy(dtype=float) > 0
        if not buyers.any():
            raise DataError(f"no profile has an order before the cutoff: cannot fit {self.variant}")
        cls = self._purchase_model()
        try:
            self.bgnbd_params_ = dict(cls().fit(x[buyers], tx[buyers], T[buyers]).params_)
        except RuntimeError as exc:  # the likelihood has no maximum on these data
            raise DataError(f"{self.variant} could not be fitted: {exc}") from None
        self.gamma_gamma_params_: dict[str, float] | None = None
        if self.kind == "ltv":
            n = X["orders_count"].to_numpy(dtype=float)
            mean = X["revenue_mean"].to_numpy(dtype=float)
            paid = (n > 0) & (mean > 0)
            if not paid.any():
                raise DataError("no order with revenue before the cutoff: cannot fit Gamma-Gamma")
            try:
                self.gamma_gamma_params_ = dict(GammaGamma().fit(n[paid], mean[paid]).params_)
            except RuntimeError as exc:
                raise DataError(f"Gamma-Gamma could not be fitted: {exc}") from None
        self.feature_names_in_ = np.asarray(self._columns(), dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        if self.kind == "churn":
            self.classes_ = np.array([0, 1])
        return self

    def _no_purchase(self, X: pd.DataFrame) -> np.ndarray:
        weeks = float(self.horizon_days) / 7.0
        return np.asarray(self._bg().probability_no_purchase(weeks, *rfm_from_features(X)))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        if self.kind != "churn":
            raise AttributeError("an LTV model has no class probabilities")
        p = np.clip(self._no_purchase(X), 0.0, 1.0)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.kind == "churn":
            return (self._no_purchase(X) >= 0.5).astype(int)
        weeks = float(self.horizon_days) / 7.0
        purchases = self._bg().conditional_expected_purchases(weeks, *rfm_from_features(X))
        g = self.gamma_gamma_params_ or {}
        p, q, v = g["p"], g["q"], g["v"]
        n = X["orders_count"].to_numpy(dtype=float)
        mean = np.where(n > 0, X["revenue_mean"].to_numpy(dtype=float), 0.0)
        spend = p * (v + n * mean) / (p * n + q - 1.0)
        return np.asarray(purchases) * spend


class Blend:
    """The mean of fitted members' predictions (churn: class-1 probabilities).

    Each member reads its own columns (its ``feature_names_in_``) of the frame it is given; the
    blend's own ``feature_names_in_`` is their union in first-seen order. ``estimators_`` is the
    attribute the registry's structure checks walk, so every member's trees are checked too.
    """

    def __init__(self, *, kind: str = "churn", members: Sequence[str] = ()):
        self.kind = kind
        self.members = tuple(members)

    def __repr__(self) -> str:
        return f"Blend(kind={self.kind!r}, members={list(self.members)!r})"

    @classmethod
    def of(cls, kind: str, fitted: dict[str, Any]) -> Blend:
        """A blend of already fitted models, by name."""
        blend = cls(kind=kind, members=tuple(fitted))
        blend.estimators_ = list(fitted.values())
        names: list[str] = []
        for est in blend.estimators_:
            names += [str(n) for n in est.feature_names_in_ if str(n) not in names]
        blend.feature_names_in_ = np.asarray(names, dtype=object)
        blend.n_features_in_ = len(names)
        if kind == "churn":
            blend.classes_ = np.array([0, 1])
        return blend

    def fit(self, X: pd.DataFrame, y: Any = None) -> Blend:
        raise NotImplementedError("a Blend is built from fitted members with Blend.of(...)")

    def _each(self, X: pd.DataFrame) -> np.ndarray:
        out = []
        for est in self.estimators_:
            cols = [str(c) for c in est.feature_names_in_]
            if self.kind == "churn":
                classes = list(est.classes_)
                out.append(est.predict_proba(X[cols])[:, classes.index(1)])
            else:
                out.append(np.clip(est.predict(X[cols]), 0.0, None))
        return np.mean(np.vstack(out), axis=0)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        if self.kind != "churn":
            raise AttributeError("an LTV model has no class probabilities")
        p = self._each(X)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.kind == "churn":
            return (self._each(X) >= 0.5).astype(int)
        return self._each(X)
