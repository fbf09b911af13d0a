"""Fitted models as Ibis column expressions, so scores can be computed inside the warehouse.

Two kinds of models translate:

* scikit-learn pipelines of simple element-wise preprocessing steps and a linear estimator
  (see :data:`SUPPORTED_STEPS` and :data:`SUPPORTED_ESTIMATORS`), translated step by step into
  float64 column expressions: ``(x - mean) / scale``, ``sum(coef * x) + intercept``, a sigmoid
  for a classifier's probability, ``exp`` for a log-link GLM;
* the BG/NBD + Gamma-Gamma pair (:func:`btyd_scores`), whose P(alive), P(no purchase in the
  horizon) and expected spend per purchase are closed forms. The conditional expected purchases
  need the Gauss hypergeometric function 2F1, which no SQL dialect has: it depends on the
  customer only through (frequency, T), so the caller computes it in Python for the *distinct*
  pairs (:func:`btyd_purchase_factor`) and joins that small lookup table back.

A translation is only a claim. The scoring step proves it per model on a sample of real rows
(max |difference| against scikit-learn/numpy) before it trusts the warehouse result; anything
this module cannot translate raises :class:`NotTranslatable` with the reason, and the caller
streams the rows through the fitted model instead.

Constants are computed in Python and enter the SQL as float literals (never ``ln(literal)`` in
SQL: PostgreSQL would compute that in NUMERIC). Every function that can overflow or fail in SQL
(``exp`` of a large number, ``ln`` of a non-positive one) is written in a form that cannot
(:mod:`.sql_math`). The BTYD expressions live in :mod:`.sql_btyd` and are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from sqltraits_kit.traits.sql_btyd import btyd_purchase_factor, btyd_scores
from sqltraits_kit.traits.sql_math import (
    NotTranslatable,
    asinh,
    guarded_ln,
    lit,
    sigmoid,
)

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = [
    "SUPPORTED_ESTIMATORS",
    "SUPPORTED_STEPS",
    "NotTranslatable",
    "btyd_purchase_factor",
    "btyd_scores",
    "pipeline_to_ibis",
    "translatable",
]

Output = Literal["proba", "predict"]

#: Preprocessing steps that translate (class name -> what it becomes).
SUPPORTED_STEPS: dict[str, str] = {
    "StandardScaler": "(x - mean_) / scale_",
    "RobustScaler": "(x - center_) / scale_",
    "MinMaxScaler": "x * scale_ + min_, clipped when clip=True",
    "MaxAbsScaler": "x / scale_",
    "SimpleImputer": "NULL/NaN -> statistics_ (no add_indicator)",
    "FunctionTransformer": "func None, numpy.arcsinh, numpy.log1p, numpy.log or numpy.sqrt",
    "passthrough": "nothing",
}

_LINEAR_REGRESSORS = (
    "ARDRegression",
    "BayesianRidge",
    "ElasticNet",
    "ElasticNetCV",
    "HuberRegressor",
    "Lars",
    "LarsCV",
    "Lasso",
    "LassoCV",
    "LassoLars",
    "LassoLarsCV",
    "LassoLarsIC",
    "LinearRegression",
    "OrthogonalMatchingPursuit",
    "Ridge",
    "RidgeCV",
    "SGDRegressor",
)
_GLMS = ("GammaRegressor", "PoissonRegressor", "TweedieRegressor")
_CLASSIFIERS = ("LogisticRegression", "LogisticRegressionCV")

#: Final estimators that translate: binary logistic regression (probability of a class),
#: linear regressors (``X @ coef_ + intercept_``) and GLMs with identity or log link.
SUPPORTED_ESTIMATORS: tuple[str, ...] = (*_CLASSIFIERS, *_LINEAR_REGRESSORS, *_GLMS)


def _sklearn_module(obj: Any) -> bool:
    return type(obj).__module__.split(".", 1)[0] == "sklearn"


def _steps(model: Any) -> list[tuple[str, Any]]:
    """(name, step) of a pipeline (nested pipelines flattened), or [("model", model)]."""
    if not _is_pipeline(model):
        return [("model", model)]
    out: list[tuple[str, Any]] = []
    for name, step in model.steps:
        if _is_pipeline(step):
            out += [(f"{name}.{inner}", s) for inner, s in _steps(step)]
        else:
            out.append((name, step))
    return out


def _is_pipeline(obj: Any) -> bool:
    return type(obj).__name__ == "Pipeline" and _sklearn_module(obj)


def _floats(values: Any, n: int, what: str) -> list[float]:
    arr = np.asarray(values, dtype=float).ravel()
    if arr.size == 1 and n != 1:
        arr = np.repeat(arr, n)
    if arr.size != n:
        raise NotTranslatable(f"{what} has {arr.size} values for {n} columns")
    if not np.all(np.isfinite(arr)):
        raise NotTranslatable(f"{what} holds NaN or infinite values")
    return [float(v) for v in arr]


def _function(step: Any, cols: list[ir.FloatingValue]) -> list[ir.FloatingValue]:
    import ibis

    if step.kw_args:
        raise NotTranslatable("FunctionTransformer with kw_args")
    func = step.func
    if func is None:
        return cols
    name = getattr(func, "__name__", repr(func))
    if not isinstance(func, np.ufunc):
        raise NotTranslatable(f"FunctionTransformer(func={name}) is not a numpy ufunc")
    if name == "arcsinh":
        return [asinh(c) for c in cols]
    if name == "log1p":
        return [guarded_ln(c + 1.0) for c in cols]
    if name == "log":
        return [guarded_ln(c) for c in cols]
    if name == "sqrt":
        return [ibis.ifelse(c >= 0.0, c.sqrt(), ibis.null("float64")) for c in cols]
    raise NotTranslatable(f"FunctionTransformer(func=numpy.{name}) has no SQL form here")


def _step(name: str, step: Any, cols: list[ir.FloatingValue]) -> list[ir.FloatingValue]:
    import ibis

    if step is None or (isinstance(step, str) and step == "passthrough"):
        return cols
    kind = type(step).__name__
    if not _sklearn_module(step) or kind not in SUPPORTED_STEPS:
        raise NotTranslatable(
            f"step {name!r} ({type(step).__module__}.{kind}) has no SQL translation "
            f"(translatable steps: {', '.join(sorted(SUPPORTED_STEPS))})"
        )
    n = len(cols)
    if kind == "FunctionTransformer":
        return _function(step, cols)
    if kind == "StandardScaler":
        if getattr(step, "with_mean", True) and step.mean_ is not None:
            means = _floats(step.mean_, n, "mean_")
            cols = [c - lit(m) for c, m in zip(cols, means, strict=True)]
        if getattr(step, "with_std", True) and step.scale_ is not None:
            scales = _floats(step.scale_, n, "scale_")
            cols = [c / lit(s) for c, s in zip(cols, scales, strict=True)]
        return cols
    if kind == "RobustScaler":
        if step.with_centering and step.center_ is not None:
            centers = _floats(step.center_, n, "center_")
            cols = [c - lit(m) for c, m in zip(cols, centers, strict=True)]
        if step.with_scaling and step.scale_ is not None:
            scales = _floats(step.scale_, n, "scale_")
            cols = [c / lit(s) for c, s in zip(cols, scales, strict=True)]
        return cols
    if kind == "MinMaxScaler":
        scale, low = _floats(step.scale_, n, "scale_"), _floats(step.min_, n, "min_")
        cols = [c * lit(s) + lit(m) for c, s, m in zip(cols, scale, low, strict=True)]
        if step.clip:
            lo, hi = (float(v) for v in step.feature_range)
            cols = [c.clip(lower=lit(lo), upper=lit(hi)) for c in cols]
        return cols
    if kind == "MaxAbsScaler":
        scales = _floats(step.scale_, n, "scale_")
        return [c / lit(s) for c, s in zip(cols, scales, strict=True)]
    # SimpleImputer
    if step.add_indicator:
        raise NotTranslatable("SimpleImputer(add_indicator=True) adds columns")
    missing = step.missing_values
    if not (isinstance(missing, float) and math.isnan(missing)) and missing is not None:
        raise NotTranslatable(f"SimpleImputer(missing_values={missing!r}): only NaN/None")
    stats = np.asarray(step.statistics_, dtype=float)
    if stats.size != n or not np.all(np.isfinite(stats)):
        raise NotTranslatable("SimpleImputer dropped or could not fill an all-missing column")
    return [
        ibis.ifelse(c.isnull() | c.isnan(), lit(v), c)
        for c, v in zip(cols, stats.tolist(), strict=True)
    ]


def _dot(cols: Sequence[ir.FloatingValue], coef: Sequence[float], intercept: float):
    total = None
    for c, w in zip(cols, coef, strict=True):
        term = c * lit(w)
        total = term if total is None else total + term
    return lit(intercept) if total is None else total + lit(intercept)


def _estimator(
    name: str, est: Any, cols: list[ir.FloatingValue], output: Output, positive_class: Any
) -> ir.FloatingValue:
    kind = type(est).__name__
    if not _sklearn_module(est) or kind not in SUPPORTED_ESTIMATORS:
        raise NotTranslatable(
            f"estimator {name!r} ({type(est).__module__}.{kind}) has no SQL translation "
            "(translatable: binary logistic regression, linear regressors, Poisson/Gamma/"
            "Tweedie GLMs)"
        )
    n = len(cols)
    coef = np.asarray(est.coef_, dtype=float)
    if kind in _CLASSIFIERS:
        if output != "proba":
            raise NotTranslatable(f"{kind}: only class probabilities are translated")
        classes = list(est.classes_)
        if len(classes) != 2 or coef.shape[0] != 1:
            raise NotTranslatable(f"{kind} with {len(classes)} classes (only binary translates)")
        if positive_class not in classes:
            raise NotTranslatable(f"class {positive_class!r} is not one of {classes}")
        z = _dot(cols, _floats(coef, n, "coef_"), _floats(est.intercept_, 1, "intercept_")[0])
        p1 = sigmoid(z)
        # scikit-learn returns [1 - expit(z), expit(z)]: the same arithmetic for class 0.
        return p1 if classes.index(positive_class) == 1 else 1.0 - p1
    if output != "predict":
        raise NotTranslatable(f"{kind} is a regressor: it has no class probabilities")
    if coef.ndim == 2 and coef.shape[0] != 1:
        raise NotTranslatable(f"{kind} with {coef.shape[0]} targets (only one translates)")
    intercept = _floats(getattr(est, "intercept_", 0.0), 1, "intercept_")[0]
    eta = _dot(cols, _floats(coef, n, "coef_"), intercept)
    if kind in _GLMS:
        base_loss = getattr(est, "_base_loss", None)
        link = type(getattr(base_loss, "link", None)).__name__
        if link == "LogLink":
            return eta.exp()
        if link != "IdentityLink":
            raise NotTranslatable(f"{kind} with link {link!r} (identity and log translate)")
    return eta


def pipeline_to_ibis(
    model: Any,
    table: ir.Table,
    /,
    *,
    features: Sequence[str] | None = None,
    output: Output = "predict",
    positive_class: Any = 1,
) -> ir.FloatingValue:
    """The model's prediction for every row of ``table`` as one float64 Ibis expression.

    ``output="proba"`` gives a binary classifier's probability of ``positive_class``;
    ``"predict"`` a regressor's prediction. Input columns are the model's
    ``feature_names_in_`` (else ``features``), cast to float64 as scikit-learn would.
    Raises :class:`NotTranslatable` naming the step that has no exact SQL form.
    """
    if output not in ("proba", "predict"):
        raise ValueError(f"output must be 'proba' or 'predict', got {output!r}")
    names = getattr(model, "feature_names_in_", None)
    names = [str(n) for n in names] if names is not None else list(features or [])
    if not names:
        raise NotTranslatable("the model does not name its input columns (no feature names)")
    if features is not None and list(features) != names:
        raise NotTranslatable(
            f"the model was fitted on columns {names}, the card lists {list(features)}"
        )
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise NotTranslatable(f"input column(s) {', '.join(missing)} are not in the table")
    steps = _steps(model)
    cols: list[ir.FloatingValue] = [table[n].cast("float64") for n in names]
    for name, step in steps[:-1]:
        cols = _step(name, step, cols)
    name, est = steps[-1]
    return _estimator(name, est, cols, output, positive_class)


def translatable(model: Any, *, features: Sequence[str], output: Output = "predict") -> str | None:
    """None when the model translates, else the reason it does not (no warehouse needed)."""
    import ibis

    table = ibis.table({f: "float64" for f in features}, name="features")
    try:
        pipeline_to_ibis(model, table, features=features, output=output)
    except NotTranslatable as exc:
        return str(exc)
    return None
