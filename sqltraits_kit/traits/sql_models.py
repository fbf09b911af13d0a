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
(``exp`` of a large number, ``ln`` of a non-positive one) is written in a form that cannot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

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

# Above this, asinh(x) = ln(2|x|) to double precision and x * x could overflow.
_ASINH_LARGE = 1e8
_EXP_FLOOR = -700.0


class NotTranslatable(Exception):
    """The model (or one of its steps) has no exact SQL form here; ``str(exc)`` says why."""


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


def _lit(value: float) -> ir.FloatingScalar:
    """An exact float64 constant in every dialect.

    A plain literal such as ``0.009900990099009901`` is a DECIMAL to DuckDB, and its conversion
    to DOUBLE can be one ulp off (52 * that constant then differs from numpy's product). A cast
    from the shortest round-trip string is parsed correctly rounded by DuckDB and PostgreSQL.
    """
    import ibis

    value = float(value)
    if not math.isfinite(value):
        raise NotTranslatable(f"constant {value!r} is not a finite number")
    return ibis.literal(repr(value)).cast("float64")


def _asinh(x: ir.FloatingValue) -> ir.FloatingValue:
    """asinh without cancellation for negative x and without overflow for large |x|."""
    import ibis

    ax = x.abs()
    small = (ax + (ax * ax + 1.0).sqrt()).ln()
    large = (ax * 2.0).ln()
    magnitude = ibis.ifelse(ax > _ASINH_LARGE, large, small)
    return ibis.ifelse(x < 0.0, -magnitude, magnitude)


def _guarded_ln(x: ir.FloatingValue) -> ir.FloatingValue:
    """ln(x) for x > 0, NULL otherwise (numpy gives -inf/NaN there; both fail validation)."""
    import ibis

    return ibis.ifelse(x > 0.0, x.ln(), ibis.null("float64"))


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
        return [_asinh(c) for c in cols]
    if name == "log1p":
        return [_guarded_ln(c + 1.0) for c in cols]
    if name == "log":
        return [_guarded_ln(c) for c in cols]
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
            cols = [c - _lit(m) for c, m in zip(cols, means, strict=True)]
        if getattr(step, "with_std", True) and step.scale_ is not None:
            scales = _floats(step.scale_, n, "scale_")
            cols = [c / _lit(s) for c, s in zip(cols, scales, strict=True)]
        return cols
    if kind == "RobustScaler":
        if step.with_centering and step.center_ is not None:
            centers = _floats(step.center_, n, "center_")
            cols = [c - _lit(m) for c, m in zip(cols, centers, strict=True)]
        if step.with_scaling and step.scale_ is not None:
            scales = _floats(step.scale_, n, "scale_")
            cols = [c / _lit(s) for c, s in zip(cols, scales, strict=True)]
        return cols
    if kind == "MinMaxScaler":
        scale, low = _floats(step.scale_, n, "scale_"), _floats(step.min_, n, "min_")
        cols = [c * _lit(s) + _lit(m) for c, s, m in zip(cols, scale, low, strict=True)]
        if step.clip:
            lo, hi = (float(v) for v in step.feature_range)
            cols = [c.clip(lower=_lit(lo), upper=_lit(hi)) for c in cols]
        return cols
    if kind == "MaxAbsScaler":
        scales = _floats(step.scale_, n, "scale_")
        return [c / _lit(s) for c, s in zip(cols, scales, strict=True)]
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
        ibis.ifelse(c.isnull() | c.isnan(), _lit(v), c)
        for c, v in zip(cols, stats.tolist(), strict=True)
    ]


def _dot(cols: Sequence[ir.FloatingValue], coef: Sequence[float], intercept: float):
    total = None
    for c, w in zip(cols, coef, strict=True):
        term = c * _lit(w)
        total = term if total is None else total + term
    return _lit(intercept) if total is None else total + _lit(intercept)


def _exp_nonpositive(arg: ir.FloatingValue) -> ir.FloatingValue:
    """exp(arg) for arg <= 0. PostgreSQL raises "underflow" where exp rounds to 0, so the
    argument stops at -700 (exp(-700) ~ 1e-304: 0 to any tolerance); NULL stays NULL."""
    import ibis

    return ibis.ifelse(arg < _EXP_FLOOR, _EXP_FLOOR, arg).exp()


def _sigmoid(z: ir.FloatingValue) -> ir.FloatingValue:
    """1 / (1 + exp(-z)) without overflow (exp of a positive number) or underflow errors."""
    import ibis

    e = _exp_nonpositive(-z.abs())
    return ibis.ifelse(z >= 0.0, 1.0 / (e + 1.0), e / (e + 1.0))


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
        p1 = _sigmoid(z)
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


# --------------------------------------------------------------------------- BTYD


def _btyd_params(params: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    try:
        bg = {k: float(params["bgnbd"][k]) for k in ("r", "alpha", "a", "b")}
        gg = {k: float(params["gamma_gamma"][k]) for k in ("p", "q", "v")}
    except (KeyError, TypeError, ValueError) as exc:
        raise NotTranslatable(f"BTYD parameters are incomplete: {exc!r}") from None
    if params.get("time_unit", "W") != "W":
        raise NotTranslatable(f"BTYD time unit {params.get('time_unit')!r} (only 'W')")
    if not all(v > 0 and math.isfinite(v) for v in (*bg.values(), *gg.values())):
        raise NotTranslatable("BTYD parameters must be finite and positive")
    return bg, gg


def btyd_purchase_factor(
    params: Mapping[str, Any], frequency: Any, T: Any, *, horizon_days: float
) -> np.ndarray:
    """E[purchases in the horizon | alive] for each (frequency, T): the 2F1 part of BG/NBD.

    The same arithmetic as
    :meth:`sqltraits_kit.modelling.btyd.BetaGeo.conditional_expected_purchases`
    without its P(alive) factor, so factor * P(alive) reproduces it.
    """
    from scipy.special import hyp2f1

    bg, _ = _btyd_params(params)
    r, alpha, a, b = bg["r"], bg["alpha"], bg["a"], bg["b"]
    x = np.asarray(frequency, dtype=float)
    T = np.asarray(T, dtype=float)
    t = float(horizon_days) / 7.0
    z = t / (alpha + T + t)
    log1mz = np.log(alpha + T) - np.log(alpha + T + t)
    term = np.exp((a - 1) * log1mz) * hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)
    return (a + b + x - 1) / (a - 1) * (1 - term)


def btyd_scores(
    rfm: ir.Table,
    params: Mapping[str, Any],
    /,
    *,
    horizon_days: float,
    purchase_factor: str | None = "purchase_factor",
) -> dict[str, ir.FloatingValue]:
    """BG/NBD + Gamma-Gamma scores as expressions over ``rfm`` (weeks, like ``BtydPair``).

    ``rfm`` has ``frequency``, ``recency``, ``T`` and ``monetary_value`` (zeros for a customer
    without orders, scored as brand new) and, unless ``purchase_factor`` is None, a column of
    that name holding :func:`btyd_purchase_factor`. Returns ``p_alive``, ``p_no_purchase``,
    ``expected_spend_per_purchase`` and (with the factor) ``expected_purchases`` and
    ``expected_spend`` (purchases x spend per purchase) over the horizon.
    """
    import ibis

    bg, gg = _btyd_params(params)
    r, alpha, a, b = bg["r"], bg["alpha"], bg["a"], bg["b"]
    p, q, v = gg["p"], gg["q"], gg["v"]
    t = float(horizon_days) / 7.0
    x = rfm["frequency"].cast("float64")
    tx = rfm["recency"].cast("float64")
    T = rfm["T"].cast("float64")
    m = rfm["monetary_value"].cast("float64")
    pos = x > 0.0
    log_aT = (T + _lit(alpha)).ln()
    # ln(a) - ln(b + x - 1) + (r + x)(ln(alpha + T) - ln(alpha + t_x)), only read where x > 0.
    log_odds_dead = (
        _lit(math.log(a))
        - ibis.ifelse(pos, x + _lit(b) - 1.0, 1.0).ln()
        + (x + _lit(r)) * (log_aT - (tx + _lit(alpha)).ln())
    )
    p_alive = ibis.ifelse(pos, _sigmoid(-log_odds_dead), 1.0)
    # (r + x) ln((alpha + T) / (alpha + T + t)) <= 0
    some_purchase = 1.0 - _exp_nonpositive(
        (x + _lit(r)) * (log_aT - (T + _lit(alpha) + _lit(t)).ln())
    )
    out: dict[str, ir.FloatingValue] = {
        "p_alive": p_alive,
        "p_no_purchase": 1.0 - p_alive * some_purchase,
    }
    m_used = ibis.ifelse(pos, m, 0.0)
    spend = (x * m_used + _lit(v)) * _lit(p) / (x * _lit(p) + _lit(q) - 1.0)
    out["expected_spend_per_purchase"] = spend
    if purchase_factor is not None:
        purchases = rfm[purchase_factor].cast("float64") * p_alive
        out["expected_purchases"] = purchases
        out["expected_spend"] = purchases * spend
    return out
