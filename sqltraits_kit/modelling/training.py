"""Train churn and LTV models on warehouse tables and judge them out of time.

The protocol never splits at random across time. With a training cutoff ``c`` and horizon ``H``:

* training rows: features before ``c``, labels in ``[c, c + H)``;
* test rows: features before ``c + H``, labels in ``[c + H, c + 2H)``.

The training labels end where the test history ends, so no test outcome is seen in training. The
default cutoff is the latest event's day minus ``2H``, the latest cutoff whose test labels are
complete. Features and labels are computed in the warehouse; only the rows used (features and
labels at the two cutoffs, at most ``max_rows`` each, sampled systematically by profile id) are
pulled into pandas.

When the warehouse is the demo sample (it holds ``sample_truth`` and ``sample_parameters``), every
metric comes with the same metric for a *reference predictor*: BG/NBD and Gamma-Gamma with the
sample's true population parameters, fed each customer's order history. It is the best one can do
from order history alone, so it shows how close a model gets.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sqltraits_kit.errors import ConfigError, DataError
from sqltraits_kit.modelling.btyd import BtydPair
from sqltraits_kit.modelling.features import (
    CHURN_ON,
    DEFAULT_WINDOWS,
    TableMapping,
    build_features,
    build_labels,
    data_end,
    feature_columns,
    profile_count,
    to_instant,
)
from sqltraits_kit.modelling.metrics import (
    classification_metrics,
    decile_table,
    gain_curve,
    normalized_gini,
    regression_metrics,
    reliability_table,
    roc_points,
)

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.modelling.registry import ModelCard, Registry
    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "ESTIMATORS",
    "BtydPair",
    "TrainResult",
    "default_cutoff",
    "make_estimator",
    "reference_parameters",
    "save_result",
    "train_model",
]

#: The estimators each kind of model can use; the first is the default.
ESTIMATORS: dict[str, tuple[str, ...]] = {
    "churn": ("gbm", "logistic", "btyd"),
    "ltv": ("gbm", "poisson", "btyd"),
    "btyd": ("btyd",),
}
MAX_ROWS = 250_000
_IMPORTANCE_ROWS = 4_000
_SCATTER_POINTS = 2_000
_SINGLE_THREAD_ROWS = 20_000
_RFM = ("btyd_frequency", "btyd_recency", "btyd_T", "btyd_monetary")

Progress = Callable[[str, float], None]


@dataclass
class TrainResult:
    """A trained model, its card and the small tables the charts draw (no raw rows)."""

    card: ModelCard
    model: Any
    metrics: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    saved: bool = False
    seconds: float = 0.0


def make_estimator(kind: str, estimator: str, *, seed: int = 0) -> Any:
    """A fresh scikit-learn pipeline for ``kind`` (churn | ltv) and ``estimator``."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, PoissonRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    def linear_front() -> list[tuple[str, Any]]:
        # arcsinh tames heavy-tailed counts and revenue like a log, and is defined for the
        # negative trend features too.
        return [
            ("arcsinh", FunctionTransformer(np.arcsinh, feature_names_out="one-to-one")),
            ("scale", StandardScaler()),
        ]

    gbm = {
        "max_iter": 300,
        "learning_rate": 0.1,
        "min_samples_leaf": 50,
        "l2_regularization": 1.0,
        "early_stopping": True,
        "validation_fraction": 0.1,
        "n_iter_no_change": 10,
        "random_state": seed,
    }
    if kind == "churn" and estimator == "logistic":
        return Pipeline([*linear_front(), ("model", LogisticRegression(C=1.0, max_iter=2000))])
    if kind == "churn" and estimator == "gbm":
        return Pipeline([("model", HistGradientBoostingClassifier(**gbm))])
    if kind == "ltv" and estimator == "poisson":
        # Newton-Cholesky: a handful of iterations where L-BFGS needs hundreds on revenue.
        glm = PoissonRegressor(alpha=1e-4, solver="newton-cholesky", max_iter=300)
        return Pipeline([*linear_front(), ("model", glm)])
    if kind == "ltv" and estimator == "gbm":
        return Pipeline([("model", HistGradientBoostingRegressor(loss="poisson", **gbm))])
    raise ConfigError(
        f"no estimator {estimator!r} for {kind!r} models "
        f"(choose from: {', '.join(ESTIMATORS.get(kind, ()))})"
    )


def reference_parameters(wh: Warehouse) -> dict[str, float] | None:
    """The sample's true population parameters, or None on a warehouse that is not the sample."""
    if not (wh.has_table("sample_truth") and wh.has_table("sample_parameters")):
        return None
    frame = wh.table("sample_parameters").to_pandas()
    values = dict(zip(frame["name"], frame["value"].astype(float), strict=False))
    needed = ("r", "alpha", "a", "b", "p", "q", "v")
    if any(k not in values for k in needed):
        return None
    return {k: values[k] for k in needed}


def _day(when: dt.datetime) -> dt.datetime:
    return dt.datetime(when.year, when.month, when.day)


def default_cutoff(
    wh: Warehouse, mapping: TableMapping | None = None, *, horizon_days: int = 90
) -> dt.date:
    """The latest training cutoff whose out-of-time test labels are complete."""
    end = _day(data_end(wh, mapping or TableMapping()))
    return (end - dt.timedelta(days=2 * int(horizon_days))).date()


def _rfm(wh: Warehouse, mapping: TableMapping, cutoff: dt.datetime, id_type: Any) -> ir.Table:
    from sqltraits_kit.modelling.rfm import rfm_as_of

    rfm = rfm_as_of(wh, mapping, cutoff, id_type=id_type)  # the one scoring reads as well
    return rfm.select(
        profile_id=rfm.customer_id,
        btyd_frequency=rfm.frequency,
        btyd_recency=rfm.recency,
        btyd_T=rfm.T,
        btyd_monetary=rfm.monetary_value,
    )


def _sampled(expr: ir.Table, rows: int, max_rows: int | None) -> tuple[ir.Table, int]:
    """Every k-th profile by id when there are too many: deterministic, portable, unbiased in
    anything unrelated to the id order."""
    import ibis

    if not max_rows or rows <= max_rows:
        return expr, 1
    step = math.ceil(rows / max_rows)
    numbered = expr.mutate(_row=ibis.row_number().over(order_by=expr.profile_id))
    return numbered.filter(numbered._row % step == 0).drop("_row"), step


def _pull(
    wh: Warehouse,
    mapping: TableMapping,
    *,
    cutoff: dt.datetime,
    horizon_days: int,
    windows: Sequence[int],
    churn_on: str,
    with_features: bool,
    with_rfm: bool,
    max_rows: int | None,
) -> tuple[pd.DataFrame, int]:
    """Features and/or RFM, plus labels, at one cutoff, as a pandas frame sorted by profile."""
    labels = build_labels(wh, mapping, cutoff=cutoff, horizon_days=horizon_days, churn_on=churn_on)
    expr = labels
    if with_features:
        feats = build_features(wh, mapping, as_of=cutoff, windows=windows)
        expr = feats.join(labels, "profile_id")
    if with_rfm:
        id_type = wh.table(mapping.profiles_table)[mapping.profile_id].type()
        expr = expr.left_join(_rfm(wh, mapping, cutoff, id_type), "profile_id")
    rows = profile_count(wh, mapping, as_of=cutoff)
    expr, step = _sampled(expr, rows, max_rows)
    frame = expr.order_by("profile_id").to_pandas()
    if with_rfm:
        # No order before the cutoff: scored as a brand-new customer.
        frame[list(_RFM)] = frame[list(_RFM)].astype(float).fillna(0.0)
    return frame, step


def _fingerprint(frame: pd.DataFrame) -> str:
    # Rounded, because backends differ in the last bits of computed floats (the same data
    # on DuckDB and PostgreSQL must give the same fingerprint).
    floats = frame.select_dtypes("float").columns
    frame = frame.assign(**{c: frame[c].round(6) for c in floats})
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(hashed.tobytes())
    return "sha256:" + digest.hexdigest()


def _fit_btyd(frame: pd.DataFrame) -> BtydPair:
    from sqltraits_kit.modelling.btyd import BetaGeo, GammaGamma

    buyers = frame[frame["btyd_T"] > 0]
    if buyers.empty:
        raise DataError("no customer has an order before the cutoff: cannot fit BG/NBD")
    bg = BetaGeo().fit(buyers["btyd_frequency"], buyers["btyd_recency"], buyers["btyd_T"])
    repeat = buyers[(buyers["btyd_frequency"] > 0) & (buyers["btyd_monetary"] > 0)]
    if repeat.empty:
        raise DataError("no repeat buyer before the cutoff: cannot fit Gamma-Gamma")
    gg = GammaGamma().fit(repeat["btyd_frequency"], repeat["btyd_monetary"])
    return BtydPair(bg, gg)


def _btyd_predictions(pair: BtydPair, frame: pd.DataFrame, horizon_days: int) -> dict[str, Any]:
    rfm = [frame[c].to_numpy(float) for c in _RFM]
    return {
        "churn": pair.churn_probability(*rfm[:3], horizon_days=horizon_days),
        "ltv": pair.expected_value(*rfm, horizon_days=horizon_days),
    }


def _churn_evaluation(y: np.ndarray, p: np.ndarray, prefix: str = "") -> tuple[dict, dict]:
    metrics = classification_metrics(y, p)
    tables = {
        f"{prefix}roc": roc_points(y, p),
        f"{prefix}reliability": reliability_table(y, p),
        f"{prefix}gain": gain_curve(y, p),
    }
    return metrics, tables


def _ltv_evaluation(y: np.ndarray, p: np.ndarray, prefix: str = "") -> tuple[dict, dict]:
    metrics = regression_metrics(y, p)
    tables = {f"{prefix}deciles": decile_table(y, p), f"{prefix}gain": gain_curve(y, p)}
    return metrics, tables


def _scatter(y: np.ndarray, p: np.ndarray, *, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    take = rng.choice(y.size, size=min(_SCATTER_POINTS, y.size), replace=False)
    return pd.DataFrame({"predicted": p[take], "actual": y[take]})


def _importance(model: Any, kind: str, X: pd.DataFrame, y: np.ndarray, *, seed: int):
    """Permutation importance on a test subsample: the drop in AUC (churn) or Gini (LTV)."""
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(len(X), size=min(_IMPORTANCE_ROWS, len(X)), replace=False))
    Xs, ys = X.iloc[take], y[take]
    if kind == "churn":
        if not 0 < ys.sum() < ys.size:
            return None

        def scorer(est: Any, X_: pd.DataFrame, y_: np.ndarray) -> float:
            return roc_auc_score(y_, est.predict_proba(X_)[:, 1])
    else:
        if ys.sum() <= 0:
            return None

        def scorer(est: Any, X_: pd.DataFrame, y_: np.ndarray) -> float:
            return normalized_gini(y_, est.predict(X_)) or 0.0

    result = permutation_importance(
        model, Xs, ys, scoring=scorer, n_repeats=2, random_state=seed, n_jobs=1
    )
    frame = pd.DataFrame(
        {
            "feature": list(X.columns),
            "importance": result.importances_mean,
            "std": result.importances_std,
        }
    )
    return frame.sort_values("importance", ascending=False, ignore_index=True)


def _thread_limit(rows: int) -> Any:
    """One thread for small data: OpenMP's thread start-up and spinning then cost more than the
    work, many times over on a busy machine; big data keeps every core."""
    from contextlib import nullcontext

    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1) if rows < _SINGLE_THREAD_ROWS else nullcontext()


def _predict(model: Any, kind: str, X: pd.DataFrame) -> np.ndarray:
    if kind == "churn":
        classes = list(model.classes_)
        return model.predict_proba(X)[:, classes.index(1)]
    return np.clip(model.predict(X), 0.0, None)


def train_model(
    wh: Warehouse,
    *,
    kind: str,
    mapping: TableMapping | None = None,
    cutoff: dt.date | dt.datetime | str | None = None,
    horizon_days: int = 90,
    estimator: str | None = None,
    name: str | None = None,
    registry: Registry | None = None,
    progress: Progress | None = None,
    windows: Sequence[int] = DEFAULT_WINDOWS,
    churn_on: str = "orders",
    max_rows: int | None = MAX_ROWS,
    seed: int = 0,
) -> TrainResult:
    """Train a churn or LTV model on ``wh``, evaluate it out of time, and save it if asked.

    ``kind`` is ``churn`` or ``ltv`` (``btyd``, or ``estimator="btyd"``, fits the BG/NBD +
    Gamma-Gamma pair, scored on both). ``cutoff`` (a date; default: latest data - 2 horizons) is
    the training cutoff; the test cutoff is ``cutoff + horizon_days``. With ``registry`` the model
    is saved as the next version of ``name`` (default: the kind). ``progress(message, fraction)``
    hears about each step. At most ``max_rows`` profiles per cutoff are used (every k-th by id).
    """
    from sqltraits_kit.modelling.registry import ModelCard, library_versions

    started = time.perf_counter()
    report = progress or (lambda _msg, _frac: None)
    if kind not in ESTIMATORS:
        raise ConfigError(f"kind must be one of {', '.join(ESTIMATORS)}, got {kind!r}")
    estimator = estimator or ESTIMATORS[kind][0]
    if estimator not in ESTIMATORS[kind]:
        raise ConfigError(
            f"no estimator {estimator!r} for {kind!r} models "
            f"(choose from: {', '.join(ESTIMATORS[kind])})"
        )
    name = name or kind  # "ltv" with the BTYD pair is still the LTV model by name
    if estimator == "btyd":
        kind = "btyd"
    if churn_on not in CHURN_ON:
        raise ConfigError(f"churn_on must be one of {CHURN_ON}, got {churn_on!r}")
    if int(horizon_days) != horizon_days or horizon_days < 1:
        raise ConfigError(f"horizon_days must be a whole number >= 1, got {horizon_days!r}")
    horizon_days = int(horizon_days)
    if max_rows is not None and max_rows < 100:
        raise ConfigError(f"max_rows must be at least 100, got {max_rows}")
    mapping = mapping or TableMapping()
    windows = sorted({int(w) for w in windows})

    report("checking the table mapping", 0.0)
    mapping.validate(wh)
    end = data_end(wh, mapping)
    if cutoff is None:
        train_cutoff = _day(end) - dt.timedelta(days=2 * horizon_days)
    else:
        train_cutoff = _day(to_instant(cutoff))
    test_cutoff = train_cutoff + dt.timedelta(days=horizon_days)
    test_end = test_cutoff + dt.timedelta(days=horizon_days)
    if test_end > end:
        latest = (_day(end) - dt.timedelta(days=2 * horizon_days)).date()
        raise ConfigError(
            f"cutoff {train_cutoff.date()} is too late for a {horizon_days}-day horizon: the "
            f"out-of-time test needs labels until {test_end.date()}, but the data end at "
            f"{end:%Y-%m-%d %H:%M}. Choose a cutoff on or before {latest}."
        )

    truth = reference_parameters(wh)
    use_features = kind != "btyd"
    use_rfm = kind == "btyd" or truth is not None
    notes: list[str] = []
    pull = {
        "horizon_days": horizon_days,
        "windows": windows,
        "churn_on": churn_on,
        "with_features": use_features,
        "with_rfm": use_rfm,
        "max_rows": max_rows,
    }
    report(f"building training rows (cutoff {train_cutoff.date()}) in the warehouse", 0.05)
    train, step = _pull(wh, mapping, cutoff=train_cutoff, **pull)
    if step > 1:
        notes.append(f"training rows: every {step}th profile by id (max_rows={max_rows})")
    report(f"building test rows (cutoff {test_cutoff.date()}) in the warehouse", 0.35)
    test, step = _pull(wh, mapping, cutoff=test_cutoff, **pull)
    if step > 1:
        notes.append(f"test rows: every {step}th profile by id (max_rows={max_rows})")
    if len(train) == 0:
        raise DataError(
            f"no profile in {mapping.profiles_table!r} was created before the cutoff "
            f"{train_cutoff.date()}: choose a later cutoff"
        )
    if len(test) == 0:
        raise DataError(f"no profile exists before the test cutoff {test_cutoff.date()}")

    features = feature_columns(mapping, windows=windows) if use_features else list(_RFM)
    target = "ltv" if kind == "ltv" else "churned"
    metrics: dict[str, Any] = {}
    tables: dict[str, pd.DataFrame] = {}
    params = None
    if kind == "btyd":
        report("fitting BG/NBD and Gamma-Gamma", 0.6)
        model = _fit_btyd(train)
        params = model.params()
        predicted = _btyd_predictions(model, test, horizon_days)
        m, t = _churn_evaluation(test["churned"].to_numpy(float), predicted["churn"])
        metrics.update({k: v for k, v in m.items() if k != "rows"})
        tables.update(t)
        m, t = _ltv_evaluation(test["ltv"].to_numpy(float), predicted["ltv"], prefix="ltv_")
        metrics.update({k: v for k, v in m.items() if k != "rows"})
        tables.update(t)
        tables["ltv_scatter"] = _scatter(test["ltv"].to_numpy(float), predicted["ltv"], seed=seed)
        fingerprint_cols = ["profile_id", *_RFM, "churned", "ltv"]
    else:
        y_train = train[target].to_numpy(float)
        if kind == "churn" and not 0 < y_train.sum() < y_train.size:
            raise DataError(
                f"every training profile has churned={int(y_train[0])} at cutoff "
                f"{train_cutoff.date()}: a classifier needs both outcomes; choose another cutoff "
                "or horizon"
            )
        report(f"fitting {estimator} on {len(train):,} profiles", 0.6)
        with _thread_limit(len(train)):
            model = make_estimator(kind, estimator, seed=seed)
            model.fit(train[features], y_train if kind == "ltv" else y_train.astype(int))
            report(f"evaluating on {len(test):,} profiles at {test_cutoff.date()}", 0.8)
            y_test = test[target].to_numpy(float)
            pred = _predict(model, kind, test[features])
            evaluate = _churn_evaluation if kind == "churn" else _ltv_evaluation
            metrics, tables = evaluate(y_test, pred)
            metrics.pop("rows", None)
            if kind == "ltv":
                tables["scatter"] = _scatter(y_test, pred, seed=seed)
            importance = _importance(model, kind, test[features], y_test, seed=seed)
        if importance is not None:
            tables["importance"] = importance
        fingerprint_cols = ["profile_id", *features, "churned", "ltv"]

    if truth is not None:
        report("scoring the reference predictor (true sample parameters)", 0.9)
        reference = BtydPair.from_params(
            {
                "bgnbd": {k: truth[k] for k in ("r", "alpha", "a", "b")},
                "gamma_gamma": {k: truth[k] for k in ("p", "q", "v")},
            }
        )
        ref = _btyd_predictions(reference, test, horizon_days)
        evaluations = []
        if kind in ("churn", "btyd"):
            evaluations.append(("", _churn_evaluation, "churned", ref["churn"]))
        if kind in ("ltv", "btyd"):
            prefix = "ltv_" if kind == "btyd" else ""
            evaluations.append((prefix, _ltv_evaluation, "ltv", ref["ltv"]))
        for prefix, evaluate, label, values in evaluations:
            m, t = evaluate(test[label].to_numpy(float), values, prefix=f"reference_{prefix}")
            skip = ("rows", "base_rate", "mean_actual")  # the same data: said once
            metrics.update({f"reference_{k}": v for k, v in m.items() if k not in skip})
            tables.update(t)
        notes.append(
            "reference: BG/NBD + Gamma-Gamma with the sample's true parameters "
            + ", ".join(f"{k}={v:g}" for k, v in truth.items())
        )
    metrics["train_rows"] = len(train)
    metrics["test_rows"] = len(test)

    card = ModelCard(
        name=name,
        kind=kind,
        estimator=estimator,
        features=features,
        mapping=mapping.to_dict(),
        cutoff=train_cutoff.date().isoformat(),
        test_cutoff=test_cutoff.date().isoformat(),
        horizon_days=horizon_days,
        windows=list(windows),
        churn_on=churn_on,
        metrics=metrics,
        training_rows=len(train),
        test_rows=len(test),
        data_fingerprint=_fingerprint(train[fingerprint_cols]),
        library_versions=library_versions(),
        warehouse=wh.display_url,
        params=params,
        notes=notes,
    )
    saved = False
    if registry is not None:
        report(f"saving to the registry {registry.root}", 0.97)
        card = registry.save(model, card)
        saved = True
    report("done", 1.0)
    return TrainResult(
        card=card,
        model=model,
        metrics=metrics,
        tables=tables,
        saved=saved,
        seconds=time.perf_counter() - started,
    )


def save_result(result: TrainResult, registry: Registry) -> TrainResult:
    """Save an already trained result (the app trains first, then the user saves)."""
    card = registry.save(result.model, result.card)
    return dataclasses.replace(result, card=card, saved=True)
