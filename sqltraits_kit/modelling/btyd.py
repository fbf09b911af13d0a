"""Buy-till-you-die models: RFM summaries in the warehouse, BG/NBD and Gamma-Gamma in numpy.

Hand-written on numpy/scipy on purpose: ``lifetimes`` has been unmaintained since 2020 and breaks
on recent pandas/scipy, and ``pymc-marketing`` pulls in PyMC, far too heavy for a scoring kit.
The models follow Fader, Hardie & Lee (2005) "Counting Your Customers the Easy Way" (BG/NBD) and
Fader & Hardie (2013) "The Gamma-Gamma Model of Monetary Value"; the tests reproduce both papers'
CDNOW estimates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1

from sqltraits_kit.modelling.btyd_simulation import BtydSample, simulate_bgnbd, simulate_gamma_gamma

# Re-exported: the RFM summary is what these models fit on.
from sqltraits_kit.modelling.rfm import rfm_summary

__all__ = [
    "BetaGeo",
    "BtydPair",
    "BtydSample",
    "GammaGamma",
    "ModifiedBetaGeo",
    "rfm_summary",
    "simulate_bgnbd",
    "simulate_gamma_gamma",
]


def _arrays(names: tuple[str, ...], *values: Any) -> tuple[np.ndarray, ...]:
    arrays = [np.asarray(v, dtype=float) for v in values]
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    arrays = [np.broadcast_to(a, shape) for a in arrays]
    for name, a in zip(names, arrays, strict=True):
        bad = np.flatnonzero(~np.isfinite(a.ravel()))
        if bad.size:
            raise ValueError(
                f"{name} has {bad.size} missing/infinite values (first at row {bad[0]})"
            )
    return tuple(arrays)


def _check_rows(condition: np.ndarray, message: str) -> None:
    bad = np.flatnonzero(condition.ravel())
    if bad.size:
        raise ValueError(f"{bad.size} rows {message} (first at row {bad[0]})")


def _out(values: np.ndarray) -> np.ndarray | float:
    return float(values) if np.ndim(values) == 0 else values


def _fit(objective: Any, n_params: int) -> np.ndarray:
    """Minimise in log-parameter space: L-BFGS-B with analytic gradients, Nelder-Mead if stuck."""
    bounds = [(-20.0, 20.0)] * n_params
    opts = {"ftol": 1e-15, "gtol": 1e-10, "maxiter": 5000}

    def lbfgs(start: np.ndarray) -> Any:
        res = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds, options=opts)
        # A line search that stalls at machine precision reports ABNORMAL: fine if flat there.
        # Flat means a gradient of the *mean* log-likelihood below 1e-5: on a log where nobody
        # seems to drop out (a wholesaler's) the optimum runs off along a ridge (a -> 0,
        # b -> inf) and stalls there at 1e-6, where Nelder-Mead would crawl for seconds.
        res.ok = np.all(np.isfinite(res.x)) and (res.success or np.abs(res.jac).max() < 1e-5)
        return res

    res = lbfgs(np.zeros(n_params))
    if not res.ok:
        nm = minimize(
            lambda p: objective(p)[0],
            res.x if np.all(np.isfinite(res.x)) else np.zeros(n_params),
            method="Nelder-Mead",
            bounds=bounds,
            options={"maxiter": 20000, "xatol": 1e-10, "fatol": 1e-14},
        )
        res = lbfgs(nm.x)
        # Far along that ridge (a, b ~ e^10) the analytic gradient loses digits to cancellation
        # and never looks flat; Nelder-Mead, which reads no gradient, is the judge there: if it
        # converged and L-BFGS-B cannot improve on its point, that point is the optimum.
        stuck = nm.success and np.isfinite(res.fun) and res.fun >= nm.fun - 1e-12
        res.ok = res.ok or bool(stuck and np.all(np.isfinite(res.x)))
    if not res.ok:
        raise RuntimeError(f"maximum-likelihood fit did not converge: {res.message}")
    return np.exp(res.x)


class _Rows:
    """Distinct data rows with counts; terms that depend on frequency only are computed once per
    distinct frequency (``xs``), then spread back to rows with ``x_of_row``. Real summaries
    repeat the same rows a lot, and a million customers have a few hundred distinct frequencies.
    """

    def __init__(self, *columns: np.ndarray) -> None:
        cols = [np.asarray(c, dtype=float).ravel() for c in columns]
        order = np.lexsort(cols[::-1])  # sorted by frequency first
        cols = [c[order] for c in cols]
        new = np.ones(order.size, dtype=bool)
        new[1:] = np.any([np.diff(c) != 0 for c in cols], axis=0)
        starts = np.flatnonzero(new)
        self.weight = np.diff(np.append(starts, order.size)).astype(float)
        self.cols = [c[starts] for c in cols]
        self.xs, self.x_of_row = np.unique(self.cols[0], return_inverse=True)


def _bgnbd_loglik(
    params: np.ndarray, rows: _Rows, grad: bool = False, shift: int = 0
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-row BG/NBD log-likelihood (FHL 2005 eq. 6) and its gradient in log-params.

    ``shift=1`` gives the modified BG/NBD (Batislam, Denizel & Filiztekin 2007): a customer may
    also drop out right after the first purchase, so Beta(a, b + x) becomes Beta(a, b + x + 1)
    and the "dropped after the last purchase" term holds for x = 0 too, with b + x for b + x - 1.
    """
    r, alpha, a, b = params
    xs, i = rows.xs, rows.x_of_row
    x, tx, T = rows.cols
    log_aT, log_atx = np.log(alpha + T), np.log(alpha + tx)
    pos = (x > 0) | (shift > 0)
    bx = b + shift  # the Beta's second parameter at x = 0
    # bx + x - 1 is only read where the dead term exists, where it is >= b > 0.
    log_bx1 = np.log(np.where((xs > 0) | (shift > 0), bx + xs - 1, 1.0))
    lead = gammaln(r + xs) + gammaln(bx + xs) - gammaln(a + bx + xs)
    lead = lead[i] - gammaln(r) + r * np.log(alpha) + gammaln(a + b) - gammaln(b)
    alive = -(r + x) * log_aT
    dead = np.where(pos, np.log(a) - log_bx1[i] - (r + x) * log_atx, -np.inf)
    tail = np.logaddexp(alive, dead)
    if not grad:
        return lead + tail, None
    w_dead = np.exp(dead - tail)
    w_alive = 1.0 - w_dead
    psi_ab = digamma(a + b) - digamma(a + bx + xs)[i]
    d_r = digamma(r + xs)[i] - digamma(r) + np.log(alpha) - w_alive * log_aT - w_dead * log_atx
    d_alpha = r / alpha - (r + x) * (w_alive / (alpha + T) + w_dead / (alpha + tx))
    d_a = psi_ab + w_dead / a
    d_b = psi_ab + digamma(bx + xs)[i] - digamma(b) - w_dead * np.exp(-log_bx1[i])
    return lead + tail, np.stack([d_r * r, d_alpha * alpha, d_a * a, d_b * b])


def _maximise(loglik: Any, rows: _Rows, n: int, penalizer: float) -> tuple[np.ndarray, float]:
    """Penalised like lifetimes: mean negative log-likelihood + penalizer * sum(params ** 2)."""
    w, total = rows.weight, rows.weight.sum()

    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(log_params)
        ll, g = loglik(params, rows, grad=True)
        pen = penalizer * params**2
        return -(w @ ll) / total + pen.sum(), -(g @ w) / total + 2 * pen

    params = _fit(objective, n)
    return params, float(w @ loglik(params, rows)[0])


class BetaGeo:
    """BG/NBD model (Fader, Hardie & Lee 2005): Poisson purchases while alive, dropout after each
    repeat purchase with probability p; lambda ~ Gamma(r, rate alpha), p ~ Beta(a, b)."""

    param_names = ("r", "alpha", "a", "b")
    _shift = 0  # 1: the modified BG/NBD (ModifiedBetaGeo)

    def __init__(self, penalizer_coef: float = 0.0) -> None:
        self.penalizer_coef = float(penalizer_coef)
        self.params_: dict[str, float] | None = None
        self.log_likelihood_: float | None = None

    def _loglik(self, params: np.ndarray, rows: _Rows, grad: bool = False) -> Any:
        return _bgnbd_loglik(params, rows, grad, self._shift)

    @classmethod
    def from_params(cls, *, r: float, alpha: float, a: float, b: float) -> BetaGeo:
        """A model with known parameters, e.g. the true ones of a simulation."""
        model = cls()
        model.params_ = {"r": float(r), "alpha": float(alpha), "a": float(a), "b": float(b)}
        return model

    def _validated(self, frequency: Any, recency: Any, T: Any) -> tuple[np.ndarray, ...]:
        x, tx, T = _arrays(("frequency", "recency", "T"), frequency, recency, T)
        _check_rows(
            (x < 0) | (x != np.round(x)), "have a frequency that is not a whole number >= 0"
        )
        _check_rows((tx < 0) | (tx > T), "have a recency outside [0, T]")
        return x, tx, T

    def _p(self) -> np.ndarray:
        if self.params_ is None:
            raise RuntimeError("BetaGeo is not fitted: call fit() or BetaGeo.from_params()")
        return np.array([self.params_[k] for k in self.param_names])

    def fit(self, frequency: Any, recency: Any, T: Any) -> BetaGeo:
        """Maximum-likelihood fit; ``log_likelihood_`` is the total (not mean) log-likelihood."""
        x, tx, T = self._validated(frequency, recency, T)
        if x.size == 0:
            raise ValueError("BetaGeo.fit needs at least one customer")
        params, self.log_likelihood_ = _maximise(
            self._loglik, _Rows(x, tx, T), 4, self.penalizer_coef
        )
        self.params_ = dict(zip(self.param_names, params.tolist(), strict=True))
        return self

    def log_likelihood(self, frequency: Any, recency: Any, T: Any) -> float:
        """Total log-likelihood of the data under the current parameters."""
        x, tx, T = self._validated(frequency, recency, T)
        rows = _Rows(x, tx, T)
        return float(rows.weight @ self._loglik(self._p(), rows)[0])

    def probability_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray | float:
        """P(alive at T | x, t_x, T) = 1 / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))."""
        x, tx, T = self._validated(frequency, recency, T)
        r, alpha, a, b = self._p()
        b = b + self._shift
        pos = (x > 0) | (self._shift > 0)
        log_odds_dead = (
            np.log(a)
            - np.log(np.where(pos, b + x - 1, 1.0))
            + (r + x) * (np.log(alpha + T) - np.log(alpha + tx))
        )
        return _out(np.where(pos, expit(-log_odds_dead), 1.0))

    def conditional_expected_purchases(
        self, t: Any, frequency: Any, recency: Any, T: Any
    ) -> np.ndarray | float:
        """E[repeat purchases in (T, T+t] | x, t_x, T] (FHL 2005 eq. 10).

        The paper's ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z) overflows for large x;
        Euler's transformation turns it into (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z), whose
        upper parameters no longer grow with x, with z = t/(alpha+T+t).
        """
        x, tx, T = self._validated(frequency, recency, T)
        (t,) = _arrays(("t",), t)
        _check_rows(t < 0, "have a negative horizon t")
        r, alpha, a, b = self._p()
        b = b + self._shift  # the modified model's formula is BG/NBD's with b + 1
        z = t / (alpha + T + t)
        log1mz = np.log(alpha + T) - np.log(alpha + T + t)

        def growth(a: float) -> np.ndarray:
            term = np.exp((a - 1) * log1mz) * hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)
            return (a + b + x - 1) / (a - 1) * (1 - term)

        if abs(a - 1) < 1e-4:  # removable 0/0 at a = 1: interpolate across it
            lo, hi = growth(1 - 1e-4), growth(1 + 1e-4)
            scaled = lo + (a - (1 - 1e-4)) / 2e-4 * (hi - lo)
        else:
            scaled = growth(a)
        return _out(scaled * self.probability_alive(x, tx, T))

    def expected_purchases(self, t: Any) -> np.ndarray | float:
        """E[repeat purchases in (0, t]] for a new customer (FHL 2005 eq. 9)."""
        return self.conditional_expected_purchases(t, 0.0, 0.0, 0.0)

    def probability_no_purchase(
        self, t: Any, frequency: Any, recency: Any, T: Any
    ) -> np.ndarray | float:
        """P(no repeat purchase in (T, T+t] | x, t_x, T): the churn probability over horizon t.

        A dead customer never buys again. An alive one can only drop out right after a purchase,
        so it makes no purchase in the window exactly when its Poisson clock does not tick:
        probability exp(-lambda t). Given alive at T, the data's likelihood in lambda is
        lambda^x exp(-lambda T), so with the Gamma(r, alpha) prior the posterior is
        Gamma(r+x, alpha+T), and E[exp(-lambda t)] is its Laplace transform at t. Hence
        P = 1 - P(alive) + P(alive) ((alpha+T)/(alpha+T+t))^(r+x).
        """
        x, tx, T = self._validated(frequency, recency, T)
        (t,) = _arrays(("t",), t)
        _check_rows(t < 0, "have a negative horizon t")
        r, alpha, _, _ = self._p()
        p_alive = self.probability_alive(x, tx, T)
        some_purchase = -np.expm1((r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))
        return _out(1.0 - p_alive * some_purchase)


class ModifiedBetaGeo(BetaGeo):
    """Modified BG/NBD (Batislam, Denizel & Filiztekin 2007): as BG/NBD, but a customer may also
    drop out right after the first purchase, so a one-time buyer who has been silent for long is
    no longer certainly alive. Every formula is BG/NBD's with b + 1 for b and the dropout term
    kept at x = 0; the tests reproduce BTYDplus' CDNOW estimates."""

    _shift = 1


def _gg_loglik(
    params: np.ndarray, rows: _Rows, grad: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-row Gamma-Gamma log-likelihood of the mean spend m over x transactions."""
    p, q, v = params
    xs, i = rows.xs, rows.x_of_row
    x, m = rows.cols
    log_xm_v = np.log(x * m + v)
    by_x = gammaln(p * xs + q) - gammaln(p * xs) + p * xs * np.log(xs)
    ll = by_x[i] - gammaln(q) + q * np.log(v) + (p * x - 1) * np.log(m) - (p * x + q) * log_xm_v
    if not grad:
        return ll, None
    psi = digamma(p * xs + q)
    d_p = x * ((psi - digamma(p * xs) + np.log(xs))[i] + np.log(m) - log_xm_v)
    d_q = psi[i] - digamma(q) + np.log(v) - log_xm_v
    d_v = q / v - (p * x + q) / (x * m + v)
    return ll, np.stack([d_p * p, d_q * q, d_v * v])


class GammaGamma:
    """Gamma-Gamma spend model: transaction values ~ Gamma(p, rate nu), nu ~ Gamma(q, rate v)."""

    param_names = ("p", "q", "v")

    def __init__(self, penalizer_coef: float = 0.0) -> None:
        self.penalizer_coef = float(penalizer_coef)
        self.params_: dict[str, float] | None = None
        self.log_likelihood_: float | None = None

    @classmethod
    def from_params(cls, *, p: float, q: float, v: float) -> GammaGamma:
        """A model with known parameters."""
        model = cls()
        model.params_ = {"p": float(p), "q": float(q), "v": float(v)}
        return model

    def _p(self) -> np.ndarray:
        if self.params_ is None:
            raise RuntimeError("GammaGamma is not fitted: call fit() or GammaGamma.from_params()")
        return np.array([self.params_[k] for k in self.param_names])

    def fit(self, frequency: Any, monetary_value: Any) -> GammaGamma:
        """Fit on repeat buyers only: frequency > 0, monetary_value = mean repeat-purchase value."""
        x, m = _arrays(("frequency", "monetary_value"), frequency, monetary_value)
        n_bad = int(np.sum(x <= 0))
        if n_bad:
            raise ValueError(
                f"GammaGamma.fit takes repeat buyers only: {n_bad} of {x.size} customers have "
                "frequency <= 0; filter them out (e.g. summary[summary.frequency > 0])"
            )
        _check_rows(m <= 0, "have a monetary_value <= 0")
        if x.size == 0:
            raise ValueError("GammaGamma.fit needs at least one repeat buyer")
        params, self.log_likelihood_ = _maximise(_gg_loglik, _Rows(x, m), 3, self.penalizer_coef)
        self.params_ = dict(zip(self.param_names, params.tolist(), strict=True))
        return self

    def conditional_expected_spend(self, frequency: Any, monetary_value: Any) -> np.ndarray | float:
        """E[value of a transaction | x, mean m] = p (v + x m) / (p x + q - 1); for x = 0 the
        population mean p v / (q - 1) (monetary_value is ignored there)."""
        x = np.asarray(frequency, dtype=float)
        m = np.where(x > 0, np.asarray(monetary_value, dtype=float), 0.0)
        x, m = _arrays(("frequency", "monetary_value"), x, m)
        _check_rows(x < 0, "have a negative frequency")
        p, q, v = self._p()
        return _out(p * (v + x * m) / (p * x + q - 1))


@dataclass(frozen=True)
class BtydPair:
    """BG/NBD (purchases, survival) and Gamma-Gamma (spend), both in weeks.

    Inputs are the per-customer RFM summary of :func:`sqltraits_kit.modelling.btyd.rfm_summary` with
    ``time_unit="W"``; customers without an order yet are scored as brand new (all zeros).
    """

    bgnbd: BetaGeo
    gamma_gamma: GammaGamma

    def params(self) -> dict[str, Any]:
        return {
            "bgnbd": dict(self.bgnbd.params_ or {}),
            "gamma_gamma": dict(self.gamma_gamma.params_ or {}),
            "time_unit": "W",
        }

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> BtydPair:
        if params.get("time_unit", "W") != "W":
            raise ValueError(f"time_unit must be 'W', got {params.get('time_unit')!r}")
        bg, gg = params["bgnbd"], params["gamma_gamma"]
        return cls(
            BetaGeo.from_params(r=bg["r"], alpha=bg["alpha"], a=bg["a"], b=bg["b"]),
            GammaGamma.from_params(p=gg["p"], q=gg["q"], v=gg["v"]),
        )

    def churn_probability(
        self, frequency: Any, recency: Any, T: Any, *, horizon_days: float
    ) -> np.ndarray:
        """P(no purchase in the next ``horizon_days``)."""
        return np.asarray(
            self.bgnbd.probability_no_purchase(horizon_days / 7.0, frequency, recency, T)
        )

    def expected_value(
        self, frequency: Any, recency: Any, T: Any, monetary_value: Any, *, horizon_days: float
    ) -> np.ndarray:
        """Expected revenue in the next ``horizon_days``: purchases times the value of each."""
        purchases = self.bgnbd.conditional_expected_purchases(
            horizon_days / 7.0, frequency, recency, T
        )
        spend = self.gamma_gamma.conditional_expected_spend(frequency, monetary_value)
        return np.asarray(purchases) * np.asarray(spend)
