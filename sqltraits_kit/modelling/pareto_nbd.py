"""Pareto/NBD (Schmittlein, Morrison & Colombo 1987), written from Fader, Hardie & Lee (2005)
"A Note on Deriving the Pareto/NBD Model and Related Expressions".

While alive a customer buys at Poisson rate lambda and dies after an exponential lifetime of
rate mu, at any moment (not only right after a purchase, as in BG/NBD); lambda ~ Gamma(r, rate
alpha), mu ~ Gamma(s, rate beta). With (x, t_x, T) in weeks the likelihood is

    L = Gamma(r+x) alpha^r beta^s / Gamma(r) * [ (alpha+T)^-(r+x) (beta+T)^-s + s I(t_x, T) ]

where I(a, b) = integral from a to b of (alpha+v)^-(r+x) (beta+v)^-(s+1) dv is the chance of
having died in (t_x, T]. The note gives I through the Gauss hypergeometric function,
I(a, b) = [G(a) - G(b)] / (r+s+x) with G(v) = 2F1(r+s+x, s+1; r+s+x+1; (alpha-beta)/(alpha+v))
/ (alpha+v)^(r+s+x) when alpha >= beta, and 2F1(r+s+x, r+x; r+s+x+1; (beta-alpha)/(beta+v))
/ (beta+v)^(r+s+x) when alpha < beta (so that the argument lies in [0, 1)). Both 2F1s grow
without bound as the argument nears 1 and their first parameter grows with x; Euler's
transformation 2F1(a, b; a+1; z) = (1-z)^(1-b) 2F1(1, a+1-b; a+1; z) turns them into a series
of positive terms bounded by 1/(1-z) (summed here where scipy's hyp2f1 fails on it), and
everything else is kept in logs.

The same integral, from T to T+t, gives the chance that an alive customer dies in the next t
before buying again, hence P(no purchase in (T, T+t]) without the series the note on
P(X(T, T+t) = n) needs for n > 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, gammaln, hyp2f1

from sqltraits_kit.modelling.btyd import _arrays, _check_rows, _out, _Rows

__all__ = ["ParetoNBD", "simulate_pareto_nbd"]


def _series(b: np.ndarray, c: np.ndarray, z: np.ndarray, max_terms: int) -> np.ndarray:
    """2F1(1, b; c; z) summed term by term: each term is the last times (b+k)/(c+k) z < z, so
    every term is positive, the sum is at most 1/(1-z), and it stops once a term is below
    1e-17 of the sum (NaN where that takes more than ``max_terms``)."""
    total, term = np.ones_like(z), np.ones_like(z)
    active = np.arange(z.size)
    k0 = 0
    while active.size and k0 < max_terms:
        width = int(min(4096, max(64, 2**22 // active.size)))
        k = k0 + np.arange(width, dtype=float)
        ratios = (b[active, None] + k) / (c[active, None] + k) * z[active, None]
        terms = term[active, None] * np.cumprod(ratios, axis=1)
        total[active] += terms.sum(axis=1)
        term[active] = terms[:, -1]
        active = active[term[active] >= 1e-17 * total[active]]
        k0 += width
    total[active] = np.nan
    return total


def _hyp2f1_1(b: Any, c: Any, z: Any, max_terms: int = 200_000) -> np.ndarray:
    """2F1(1, b; c; z) for 0 < b < c and 0 <= z < 1, where it lies in [1, 1/(1-z)].

    scipy's hyp2f1 (1.17) returns NaN, inf or a wrong finite number (even a negative one) for
    some of these once z nears 1 or c is in the hundreds, which large frequencies reach. Its
    answer is kept where z <= 0.95 and it lies within the bounds; elsewhere the series is
    summed, which converges geometrically at rate z. Where even ``max_terms`` terms are not
    enough (z within ~2e-4 of 1, parameters a thousandfold apart) scipy's answer is kept if it
    lies within the bounds, else the result is NaN.
    """
    b, c, z = (np.array(v, dtype=float) for v in np.broadcast_arrays(b, c, z))
    with np.errstate(all="ignore"):
        out = np.asarray(hyp2f1(1.0, b, c, z), dtype=float).copy()
        plausible = np.isfinite(out) & (out >= 1.0) & (out * (1.0 - z) <= 1.0)
    ok = plausible & (z <= 0.95)
    redo = ~ok
    if redo.any():
        summed = _series(b[redo], c[redo], z[redo], max_terms)
        # z within ~1e-4 of 1 is beyond the series: scipy's answer if it is plausible, else NaN.
        keep = np.isnan(summed) & plausible[redo]
        out[redo] = np.where(keep, out[redo], summed)
    return out


def _log_g(r: float, alpha: float, s: float, beta: float, x: np.ndarray, v: np.ndarray) -> Any:
    """log G(v) (see the module docstring), Euler-transformed, for both orders of alpha, beta."""
    log_av, log_bv = np.log(alpha + v), np.log(beta + v)
    c = r + s + x + 1.0
    if alpha >= beta:
        # 2F1(c-1, s+1; c; z) = (1-z)^-s 2F1(1, r+x; c; z), 1-z = (beta+v)/(alpha+v)
        z = (alpha - beta) / (alpha + v)
        return -(r + x) * log_av - s * log_bv + np.log(_hyp2f1_1(r + x, c, z))
    # 2F1(c-1, r+x; c; z) = (1-z)^(1-r-x) 2F1(1, s+1; c; z), 1-z = (alpha+v)/(beta+v)
    z = (beta - alpha) / (beta + v)
    return (1.0 - r - x) * log_av - (s + 1.0) * log_bv + np.log(_hyp2f1_1(s + 1.0, c, z))


def _log_dead_between(
    r: float, alpha: float, s: float, beta: float, x: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> Any:
    """log(s I(lo, hi)): -inf where lo == hi."""
    g_lo = _log_g(r, alpha, s, beta, x, lo)
    g_hi = _log_g(r, alpha, s, beta, x, hi)
    gap = np.minimum(g_hi - g_lo, 0.0)  # G decreases; rounding may not
    with np.errstate(divide="ignore"):
        return np.log(s) - np.log(r + s + x) + g_lo + np.log(-np.expm1(gap))


def _pnbd_loglik(params: np.ndarray, rows: _Rows) -> np.ndarray:
    """Per-row Pareto/NBD log-likelihood (FHL 2005 note, eq. 19 with A0 as in the docstring)."""
    r, alpha, s, beta = params
    x, tx, T = rows.cols
    lead = gammaln(r + rows.xs)[rows.x_of_row] - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    dead = _log_dead_between(r, alpha, s, beta, x, tx, T)
    return lead + np.logaddexp(alive, dead)


def _fit_numeric(objective: Any, n_params: int) -> np.ndarray:
    """Minimise in log-parameter space without analytic gradients (the 2F1 has none in its
    parameters): L-BFGS-B on central differences; Nelder-Mead and L-BFGS-B again if it stalls."""
    bounds = [(-20.0, 20.0)] * n_params

    def with_grad(p: np.ndarray) -> tuple[float, np.ndarray]:
        f = objective(p)
        h = 1e-6
        g = np.empty(n_params)
        for i in range(n_params):
            e = np.zeros(n_params)
            e[i] = h
            g[i] = (objective(p + e) - objective(p - e)) / (2 * h)
        return f, g

    opts = {"ftol": 1e-14, "gtol": 1e-8, "maxiter": 2000}
    res = minimize(
        with_grad, np.zeros(n_params), jac=True, method="L-BFGS-B", bounds=bounds, options=opts
    )
    best, fun = res.x, res.fun
    if not (res.success and np.isfinite(fun)):
        nm = minimize(
            objective,
            best if np.all(np.isfinite(best)) else np.zeros(n_params),
            method="Nelder-Mead",
            bounds=bounds,
            options={"maxiter": 20000, "xatol": 1e-9, "fatol": 1e-13},
        )
        res = minimize(with_grad, nm.x, jac=True, method="L-BFGS-B", bounds=bounds, options=opts)
        best, fun = (res.x, res.fun) if res.fun <= nm.fun else (nm.x, nm.fun)
    if not (np.all(np.isfinite(best)) and np.isfinite(fun) and fun < 1e300):
        raise RuntimeError(f"maximum-likelihood fit did not converge: {res.message}")
    if np.any(np.abs(best) >= 19.9):
        raise RuntimeError(
            "maximum-likelihood fit ran to the edge of the parameter space "
            f"(log-parameters {np.round(best, 2).tolist()}): the data do not pin the model down"
        )
    return np.exp(best)


class ParetoNBD:
    """Pareto/NBD: Poisson purchases at rate lambda while alive, an exponential lifetime of rate
    mu; lambda ~ Gamma(r, rate alpha), mu ~ Gamma(s, rate beta). Same interface as
    :class:`~sqltraits_kit.modelling.btyd.BetaGeo` (weeks in, weeks out)."""

    param_names = ("r", "alpha", "s", "beta")

    def __init__(self, penalizer_coef: float = 0.0) -> None:
        self.penalizer_coef = float(penalizer_coef)
        self.params_: dict[str, float] | None = None
        self.log_likelihood_: float | None = None

    @classmethod
    def from_params(cls, *, r: float, alpha: float, s: float, beta: float) -> ParetoNBD:
        """A model with known parameters, e.g. the true ones of a simulation."""
        model = cls()
        model.params_ = {"r": float(r), "alpha": float(alpha), "s": float(s), "beta": float(beta)}
        return model

    def _p(self) -> np.ndarray:
        if self.params_ is None:
            raise RuntimeError("ParetoNBD is not fitted: call fit() or ParetoNBD.from_params()")
        return np.array([self.params_[k] for k in self.param_names])

    @staticmethod
    def _validated(frequency: Any, recency: Any, T: Any) -> tuple[np.ndarray, ...]:
        x, tx, T = _arrays(("frequency", "recency", "T"), frequency, recency, T)
        _check_rows(
            (x < 0) | (x != np.round(x)), "have a frequency that is not a whole number >= 0"
        )
        _check_rows((tx < 0) | (tx > T), "have a recency outside [0, T]")
        return x, tx, T

    def fit(self, frequency: Any, recency: Any, T: Any) -> ParetoNBD:
        """Maximum-likelihood fit; ``log_likelihood_`` is the total (not mean) log-likelihood."""
        x, tx, T = self._validated(frequency, recency, T)
        if x.size == 0:
            raise ValueError("ParetoNBD.fit needs at least one customer")
        rows = _Rows(x, tx, T)
        w, total = rows.weight, rows.weight.sum()

        def objective(log_params: np.ndarray) -> float:
            params = np.exp(log_params)
            with np.errstate(all="ignore"):
                ll = _pnbd_loglik(params, rows)
            value = -(w @ ll) / total + self.penalizer_coef * float(np.sum(params**2))
            return float(value) if np.isfinite(value) else 1e300

        params = _fit_numeric(objective, 4)
        self.params_ = dict(zip(self.param_names, params.tolist(), strict=True))
        self.log_likelihood_ = float(w @ _pnbd_loglik(params, rows))
        return self

    def log_likelihood(self, frequency: Any, recency: Any, T: Any) -> float:
        """Total log-likelihood of the data under the current parameters."""
        rows = _Rows(*self._validated(frequency, recency, T))
        return float(rows.weight @ _pnbd_loglik(self._p(), rows))

    def _log_alive_odds(self, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
        """log [P(dead in (t_x, T]) / P(alive at T)] up to the common factor."""
        r, alpha, s, beta = self._p()
        dead = _log_dead_between(r, alpha, s, beta, x, tx, T)
        return dead + (r + x) * np.log(alpha + T) + s * np.log(beta + T)

    def probability_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray | float:
        """P(alive at T | x, t_x, T) = 1 / (1 + s I(t_x, T) (alpha+T)^(r+x) (beta+T)^s)."""
        x, tx, T = self._validated(frequency, recency, T)
        return _out(expit(-self._log_alive_odds(x, tx, T)))

    def conditional_expected_purchases(
        self, t: Any, frequency: Any, recency: Any, T: Any
    ) -> np.ndarray | float:
        """E[purchases in (T, T+t] | x, t_x, T] = P(alive) (r+x)/(alpha+T) (beta+T)/(s-1)
        [1 - ((beta+T)/(beta+T+t))^(s-1)] (FHL 2005 note, eq. 20); at s = 1 the bracket over
        s - 1 is its limit log((beta+T+t)/(beta+T))."""
        x, tx, T = self._validated(frequency, recency, T)
        (t,) = _arrays(("t",), t)
        _check_rows(t < 0, "have a negative horizon t")
        r, alpha, s, beta = self._p()
        log_ratio = np.log(beta + T + t) - np.log(beta + T)
        if abs(s - 1.0) < 1e-10:
            lifetime = log_ratio
        else:
            lifetime = -np.expm1(-(s - 1.0) * log_ratio) / (s - 1.0)
        rate = (r + x) / (alpha + T) * (beta + T)
        return _out(rate * lifetime * self.probability_alive(x, tx, T))

    def expected_purchases(self, t: Any) -> np.ndarray | float:
        """E[purchases in (0, t]] for a new customer:
        r beta / (alpha (s-1)) [1 - (beta/(beta+t))^(s-1)]."""
        return self.conditional_expected_purchases(t, 0.0, 0.0, 0.0)

    def probability_no_purchase(
        self, t: Any, frequency: Any, recency: Any, T: Any
    ) -> np.ndarray | float:
        """P(no purchase in (T, T+t] | x, t_x, T): the churn probability over horizon t.

        Alive at T, the posterior of (lambda, mu) is Gamma(r+x, alpha+T) x Gamma(s, beta+T). An
        alive customer makes no purchase in the window when it lives through it without one,
        E[exp(-(lambda+mu) t)] = ((alpha+T)/(alpha+T+t))^(r+x) ((beta+T)/(beta+T+t))^s, or dies
        at some u < t before its first one, E[integral of mu exp(-(lambda+mu) u) du], which is
        s I(T, T+t) (alpha+T)^(r+x) (beta+T)^s. A dead customer never buys.
        """
        x, tx, T = self._validated(frequency, recency, T)
        (t,) = _arrays(("t",), t)
        _check_rows(t < 0, "have a negative horizon t")
        r, alpha, s, beta = self._p()
        x, tx, T, t = np.broadcast_arrays(x, tx, T, t)
        scale = (r + x) * np.log(alpha + T) + s * np.log(beta + T)
        survive = (r + x) * (np.log(alpha + T) - np.log(alpha + T + t)) + s * (
            np.log(beta + T) - np.log(beta + T + t)
        )
        dies = _log_dead_between(r, alpha, s, beta, x, T, T + t) + scale
        quiet_if_alive = np.minimum(np.exp(np.logaddexp(survive, dies)), 1.0)
        p_alive = expit(-self._log_alive_odds(x, tx, T))
        return _out(1.0 - p_alive * (1.0 - quiet_if_alive))


def simulate_pareto_nbd(
    n: int,
    *,
    r: float,
    alpha: float,
    s: float,
    beta: float,
    T: Any,
    seed: int | None = None,
    holdout: float = 0.0,
) -> Any:
    """Simulate n customers of the Pareto/NBD process observed for T periods after their first
    buy: a :class:`~sqltraits_kit.modelling.btyd_simulation.BtydSample`.

    A customer with lifetime tau makes N ~ Poisson(lambda min(tau, T)) repeat purchases at
    uniform times in (0, min(tau, T)], the last at that length times Beta(N, 1); the holdout
    counts Poisson(lambda (min(tau, T+holdout) - T)) more for those alive at T.
    """
    from sqltraits_kit.modelling.btyd_simulation import BtydSample

    rng = np.random.default_rng(seed)
    T = np.broadcast_to(np.asarray(T, dtype=float), (n,)).copy()
    lam = rng.gamma(r, 1.0 / alpha, n)
    mu = rng.gamma(s, 1.0 / beta, n)
    tau = rng.exponential(1.0 / mu)
    seen = np.minimum(tau, T)
    x = rng.poisson(lam * seen)
    tx = np.zeros(n)
    pos = x > 0
    tx[pos] = seen[pos] * rng.beta(x[pos], 1.0)
    alive = tau > T
    hold = np.zeros(n, dtype=np.int64)
    if holdout > 0:
        span = np.clip(tau - T, 0.0, holdout)
        hold = rng.poisson(lam * span)
    return BtydSample(x.astype(np.int64), tx, T, alive, hold)
