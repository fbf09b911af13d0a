"""Pareto/NBD, checked against the published CDNOW results, Fader & Hardie's separate expression
for P(no purchase), numerical integrals that never touch a hypergeometric function, and
simulations with known parameters."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special

from sqltraits_kit.modelling.btyd import BetaGeo
from sqltraits_kit.modelling.pareto_nbd import ParetoNBD, _hyp2f1_1, simulate_pareto_nbd

DATA = Path(__file__).parent / "data"
#: The MLE on CDNOW's 2,357-customer, 39-week calibration sample (Fader, Hardie & Lee 2005,
#: "A Note on Deriving the Pareto/NBD Model"; the BTYD package's walkthrough): LL -9,594.98.
PUBLISHED = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
#: The parameters the BTYD walkthrough prints and uses for its per-customer figures.
WALKTHROUGH = {"r": 0.5534, "alpha": 10.5802, "s": 0.6061, "beta": 11.6562}
PARAMS = [
    {"r": 0.55, "alpha": 10.58, "s": 0.61, "beta": 11.67},  # alpha < beta
    {"r": 0.55, "alpha": 11.67, "s": 0.61, "beta": 10.58},  # alpha > beta
    {"r": 2.0, "alpha": 3.0, "s": 1.0, "beta": 30.0},  # s = 1
    {"r": 0.3, "alpha": 50.0, "s": 2.5, "beta": 1.0},
    {"r": 1.0, "alpha": 1.0, "s": 1.0, "beta": 1.0},  # alpha = beta
]
ROWS = [(0, 0, 30), (2, 30.43, 38.86), (26, 30.86, 31), (100, 5, 80), (5, 10, 10), (300, 99, 100)]


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return pd.read_csv(DATA / "cdnow_customers_summary_with_transactions.csv")


def test_pareto_nbd_reproduces_the_published_cdnow_estimates(cdnow: pd.DataFrame) -> None:
    model = ParetoNBD().fit(cdnow["x"], cdnow["t_x"], cdnow["T"])
    assert {k: round(v, 3) for k, v in model.params_.items()} == pytest.approx(
        PUBLISHED, abs=0.0011
    )
    assert round(model.log_likelihood_, 2) == pytest.approx(-9594.98, abs=0.011)
    assert model.log_likelihood(cdnow["x"], cdnow["t_x"], cdnow["T"]) == pytest.approx(
        model.log_likelihood_
    )
    # FHL (2005) report BG/NBD's -9,582.4 beside Pareto/NBD's -9,595.0 on these data.
    assert (
        model.log_likelihood_ < BetaGeo().fit(cdnow["x"], cdnow["t_x"], cdnow["T"]).log_likelihood_
    )


def test_per_customer_figures_match_the_btyd_walkthrough(cdnow: pd.DataFrame) -> None:
    # Customer 1516 of the walkthrough: x = 26, t_x = 30.86, T = 31; P(alive) with the printed
    # (rounded) parameters, the expectation with the fitted ones (the printed give 25.455).
    printed = ParetoNBD.from_params(**WALKTHROUGH)
    assert round(printed.probability_alive(26, 30.86, 31), 4) == 0.9979
    fitted = ParetoNBD().fit(cdnow["x"], cdnow["t_x"], cdnow["T"])
    assert round(fitted.conditional_expected_purchases(52, 26, 30.86, 31), 2) == 25.46


def _log_likelihood_by_integration(p: dict[str, float], x: float, tx: float, T: float) -> float:
    """log L with the 'died in (t_x, T]' term integrated numerically (no 2F1)."""
    r, alpha, s, beta = p["r"], p["alpha"], p["s"], p["beta"]

    def log_f(v: float) -> float:
        return -(r + x) * math.log(alpha + v) - (s + 1) * math.log(beta + v)

    top = log_f(tx)
    died, _ = integrate.quad(
        lambda v: math.exp(log_f(v) - top), tx, T, epsabs=0.0, epsrel=1e-12, limit=500
    )
    alive = -(r + x) * math.log(alpha + T) - s * math.log(beta + T)
    lead = special.gammaln(r + x) - special.gammaln(r) + r * math.log(alpha) + s * math.log(beta)
    return lead + top + math.log(math.exp(alive - top) + s * died)


@pytest.mark.parametrize("params", PARAMS)
def test_likelihood_matches_an_integral_in_both_2f1_cases(params: dict[str, float]) -> None:
    model = ParetoNBD.from_params(**params)
    for x, tx, T in ROWS:
        got = model.log_likelihood([x], [tx], [T])
        assert got == pytest.approx(_log_likelihood_by_integration(params, x, tx, T), rel=1e-12)


def _expected_by_integration(model: ParetoNBD, t: float, x: float, tx: float, T: float) -> float:
    """E[Y(t)|data] = P(alive) (r+x)/(alpha+T) E_mu[(1 - exp(-mu t)) / mu], mu ~ Gamma(s, beta+T):
    the expected lifetime in the window times the rate, by quadrature."""
    r, alpha, s, beta = (model.params_[k] for k in ("r", "alpha", "s", "beta"))
    rate = beta + T

    def integrand(mu: float) -> float:
        density = math.exp(s * math.log(rate) + (s - 1) * math.log(mu) - rate * mu - math.lgamma(s))
        return density * -math.expm1(-mu * t) / mu

    split = 50 * max(s, 1.0) / rate  # past it the Gamma density is negligible
    value = sum(
        integrate.quad(integrand, lo, hi, limit=500, epsabs=0.0, epsrel=1e-11)[0]
        for lo, hi in ((0, split), (split, np.inf))
    )
    return model.probability_alive(x, tx, T) * (r + x) / (alpha + T) * value


@pytest.mark.parametrize("params", PARAMS)
def test_conditional_expectation_matches_an_integral(params: dict[str, float]) -> None:
    model = ParetoNBD.from_params(**params)
    for x, tx, T in ROWS:
        got = model.conditional_expected_purchases(39, x, tx, T)
        want = _expected_by_integration(model, 39, x, tx, T)
        assert got == pytest.approx(want, rel=1e-8, abs=1e-300), (x, tx, T)


def _no_purchase_fader_hardie(p: dict[str, float], t: float, x: float, tx: float, T: float):
    """P(X(T, T+t) = 0 | x, t_x, T): Fader & Hardie (2006) "Deriving an Expression for
    P(X(t, t+tau) = x) Under the Pareto/NBD Model", eq. 16 at x* = 0, as printed (raw 2F1s)."""
    r, alpha, s, beta = p["r"], p["alpha"], p["s"], p["beta"]
    top, b = (beta, r + x) if alpha < beta else (alpha, s + 1)
    gap = abs(alpha - beta)
    log_l = ParetoNBD.from_params(**p).log_likelihood([x], [tx], [T])
    common = r * math.log(alpha) + s * math.log(beta) - special.gammaln(r)
    alive = special.gammaln(r + x) + common - (r + x) * math.log(alpha + T) - s * math.log(beta + T)
    quiet = (
        special.gammaln(r + x)
        + common
        - (r + x) * math.log(alpha + T + t)
        - s * math.log(beta + T + t)
    )

    def died(at: float) -> float:
        f = special.hyp2f1(r + s + x, b, r + s + x + 1, gap / (top + at))
        return (
            common
            + special.gammaln(r + s + x)
            + special.betaln(r + x, s + 1)
            - special.gammaln(s)
            + math.log(f)
            - (r + s + x) * math.log(top + at)
        )

    return (
        1
        - math.exp(alive - log_l)
        + math.exp(quiet - log_l)
        + math.exp(died(T) - log_l)
        - math.exp(died(T + t) - log_l)
    )


@pytest.mark.parametrize("params", PARAMS)
def test_no_purchase_matches_fader_hardies_expression(params: dict[str, float]) -> None:
    model = ParetoNBD.from_params(**params)
    for x, tx, T in ROWS[:5]:
        for t in (1.0, 13.0, 52.0):
            got = model.probability_no_purchase(t, x, tx, T)
            assert got == pytest.approx(_no_purchase_fader_hardie(params, t, x, tx, T), abs=1e-10)


def test_expected_purchases_for_a_new_customer_is_the_closed_form() -> None:
    r, alpha, s, beta = WALKTHROUGH.values()
    t = np.array([0.0, 1.0, 10.0, 39.0, 78.0])
    direct = r * beta / (alpha * (s - 1)) * (1 - (beta / (beta + t)) ** (s - 1))
    got = ParetoNBD.from_params(**WALKTHROUGH).expected_purchases(t)
    np.testing.assert_allclose(got, direct, rtol=1e-12)


@pytest.mark.parametrize("s", [1.0, 1 + 1e-11, 1 - 3e-11, 1.001])
def test_conditional_expectation_is_continuous_at_s_equal_one(s: float) -> None:
    model = ParetoNBD.from_params(r=0.5, alpha=3.0, s=s, beta=2.0)
    for t, x, tx, T in [(10, 0, 0, 20), (39, 4, 30, 38)]:
        got = model.conditional_expected_purchases(t, x, tx, T)
        assert got == pytest.approx(_expected_by_integration(model, t, x, tx, T), rel=1e-7)


def test_large_frequencies_neither_overflow_nor_jump() -> None:
    model = ParetoNBD.from_params(r=0.55, alpha=10.58, s=0.61, beta=11.67)
    # lifetimes' underflow case: its own implementation returns NaN here.
    left, right = model.conditional_expected_purchases(10, [132, 133], 200, 200)
    assert (left, right) == pytest.approx((6.2060517889632418, 6.2528722475748113), rel=1e-9)
    steep = ParetoNBD.from_params(r=10.465, alpha=7.98565181e-03, s=3.0516, beta=2.820)
    x, tx, T = np.array([400.0, 500.0, 500.0]), np.array([5.0, 1.0, 4.0]), np.array([6.0, 37, 37])
    for values in (
        steep.probability_alive(x, tx, T),
        steep.probability_no_purchase(52, x, tx, T),
        steep.conditional_expected_purchases(52, x, tx, T),
    ):
        assert np.all(np.isfinite(values)) and np.all(values >= 0)
    assert np.all(
        np.isfinite(
            [steep.log_likelihood(x[i : i + 1], tx[i : i + 1], T[i : i + 1]) for i in range(3)]
        )
    )


@pytest.mark.parametrize(
    ("b", "c", "z"),
    [
        (1.05, 2.05, 0.999),  # scipy 1.17: -26.6
        (1.05, 4.05, 0.999),  # scipy: 5e-5 off
        (0.5, 100.5, 0.99),  # scipy: inf
        (5.0, 1005.0, 0.99),  # scipy: NaN
        (500.0, 501.0, 0.99),
        (5000.0, 5010.0, 0.999),
        (2.0, 7.0, 0.3),  # scipy's own answer, kept
    ],
)
def test_the_2f1_is_right_where_scipys_is_not(b: float, c: float, z: float) -> None:
    """2F1(1, b; c; z) = (c-1) * integral of (1-t)^(c-2) (1-zt)^-b over [0, 1] (Euler)."""

    def integrand(t: float) -> float:
        return math.exp((c - 2) * math.log1p(-t) - b * math.log1p(-z * t))

    # (1-t)^(c-2) is concentrated near 0 for large c: tell quad where.
    edge = min(1.0, 50.0 / c)
    head, _ = integrate.quad(integrand, 0, edge, epsabs=0.0, epsrel=1e-13, limit=500)
    tail = 0.0
    if edge < 1:
        tail, _ = integrate.quad(integrand, edge, 1, epsabs=0.0, epsrel=1e-13, limit=500)
    assert _hyp2f1_1(b, c, z) == pytest.approx((c - 1) * (head + tail), rel=1e-10)


@pytest.mark.parametrize(
    "params",
    [
        {"r": 0.3, "alpha": 1e-3, "s": 0.5, "beta": 1e3},
        {"r": 0.3, "alpha": 1e3, "s": 0.5, "beta": 1e-3},
        {"r": 5.0, "alpha": 0.01, "s": 0.05, "beta": 500.0},
        {"r": 0.05, "alpha": 200.0, "s": 3.0, "beta": 0.02},
    ],
)
def test_parameters_orders_of_magnitude_apart_stay_exact(params: dict[str, float]) -> None:
    model = ParetoNBD.from_params(**params)
    for x, tx, T in [(0, 0, 30), (0, 0, 0.5), (3, 1, 50), (50, 49, 50), (1000, 10, 52)]:
        got = model.log_likelihood([x], [tx], [T])
        assert got == pytest.approx(_log_likelihood_by_integration(params, x, tx, T), rel=1e-11)
        want = _expected_by_integration(model, 13, x, tx, T)
        assert model.conditional_expected_purchases(13, x, tx, T) == pytest.approx(
            want, rel=1e-7, abs=1e-300
        )
        assert 0 <= model.probability_no_purchase(13, x, tx, T) <= 1


def test_probability_alive_and_no_purchase_behave_at_the_edges() -> None:
    model = ParetoNBD.from_params(**WALKTHROUGH)
    # Bought just now: alive for sure (no time to die since); silent for long: probably gone.
    assert model.probability_alive(5, 30, 30) == 1.0
    assert model.probability_alive(20, 2, 40) < 0.01 < model.probability_alive(0, 0, 40) < 1
    assert model.probability_no_purchase(0, 3, 10, 30) == pytest.approx(1.0)
    p = model.probability_no_purchase(np.array([1.0, 5.0, 20.0, 100.0, 1e9]), 3, 10, 30)
    assert np.all(np.diff(p) < 0)
    # An alive customer may still die before the next purchase: the limit is above 1 - P(alive).
    assert p[-1] > 1 - model.probability_alive(3, 10, 30)


def test_predictions_match_a_simulated_holdout_and_recover_the_parameters() -> None:
    true = {"r": 0.6, "alpha": 6.0, "s": 0.8, "beta": 12.0}
    ages = np.random.default_rng(8).uniform(10, 52, 60_000)
    sim = simulate_pareto_nbd(60_000, **true, T=ages, seed=9, holdout=39.0)
    model = ParetoNBD.from_params(**true)
    expected = model.conditional_expected_purchases(39, sim.frequency, sim.recency, sim.T)
    no_buy = model.probability_no_purchase(39, sim.frequency, sim.recency, sim.T)
    alive = model.probability_alive(sim.frequency, sim.recency, sim.T)
    assert expected.mean() == pytest.approx(sim.frequency_holdout.mean(), rel=0.02)
    assert no_buy.mean() == pytest.approx(np.mean(sim.frequency_holdout == 0), abs=0.006)
    assert alive.mean() == pytest.approx(sim.alive.mean(), abs=0.006)
    for lo, hi in [(0, 0), (1, 2), (3, 6), (7, 10_000)]:
        group = (sim.frequency >= lo) & (sim.frequency <= hi)
        assert expected[group].mean() == pytest.approx(
            sim.frequency_holdout[group].mean(), rel=0.05
        ), (lo, hi)
        assert no_buy[group].mean() == pytest.approx(
            np.mean(sim.frequency_holdout[group] == 0), abs=0.02
        ), (lo, hi)
        assert alive[group].mean() == pytest.approx(sim.alive[group].mean(), abs=0.02), (lo, hi)
    few = slice(0, 20_000)
    fitted = ParetoNBD().fit(sim.frequency[few], sim.recency[few], sim.T[few]).params_
    for name, rtol in {"r": 0.08, "alpha": 0.1, "s": 0.2, "beta": 0.3}.items():
        assert fitted[name] == pytest.approx(true[name], rel=rtol), name


def test_penalizer_shrinks_the_parameters(cdnow: pd.DataFrame) -> None:
    plain = ParetoNBD().fit(cdnow["x"], cdnow["t_x"], cdnow["T"]).params_
    shrunk = ParetoNBD(penalizer_coef=0.01).fit(cdnow["x"], cdnow["t_x"], cdnow["T"]).params_
    assert sum(v**2 for v in shrunk.values()) < sum(v**2 for v in plain.values())


@pytest.mark.parametrize(
    ("frequency", "recency", "T", "message"),
    [
        ([1, 2.5], [1, 1], [2, 2], r"^1 rows have a frequency that is not a whole number >= 0"),
        ([1, 1], [1, 3], [2, 2], r"^1 rows have a recency outside \[0, T\] \(first at row 1\)$"),
        ([1, 1], [1, float("nan")], [2, 2], r"^recency has 1 missing/infinite values"),
    ],
)
def test_bad_rows_are_refused(frequency, recency, T, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ParetoNBD().fit(frequency, recency, T)
    with pytest.raises(ValueError, match=message):
        ParetoNBD.from_params(**WALKTHROUGH).probability_alive(frequency, recency, T)


def test_unfitted_model_and_negative_horizon_say_so() -> None:
    with pytest.raises(RuntimeError, match=r"ParetoNBD is not fitted"):
        ParetoNBD().probability_alive(1, 1, 2)
    model = ParetoNBD.from_params(**WALKTHROUGH)
    for method in (model.conditional_expected_purchases, model.probability_no_purchase):
        with pytest.raises(ValueError, match=r"^1 rows have a negative horizon t"):
            method([1, -0.5], 1, 2, 3)
