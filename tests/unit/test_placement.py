"""Placement probabilities: integrated for the policy that ran, checked against independent quadrature,
against how often decisions really place each action, and against plain Thompson sampling on whole
catalogues (seeded, untimed)."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import integrate, special, stats

from nba.decision.arbitration import Sampling, arbitrate
from nba.decision.beliefs import Beliefs
from nba.decision.placement import placements
from nba.learning.bandit import GRID, ModelState


def table(alpha: np.ndarray, beta: np.ndarray) -> Beliefs:
    n = alpha.shape[0]
    m = ModelState.build("t", alpha.astype(float), beta.astype(float), [str(i) for i in range(n)], ["k"], {})
    return Beliefs.table(m.mean[:, 0], m.low[:, 0], m.high[:, 0], m.table[:, 0])


def _cdf(b: Beliefs, j: int, t: float) -> float:
    """An independent reading of belief j's CDF: np.interp over the table, scipy for the others."""
    lo, hi = float(b.low[j]), float(b.high[j])
    if hi <= lo:
        return float(t >= lo)
    if b.kind == "table":
        return float(np.interp(t, np.linspace(lo, hi, GRID + 1), b.grid[j]))
    z = special.logit(min(max(t, 1e-300), 1 - 1e-16)) if b.kind == "logistic" else t
    p = stats.norm.cdf((z - b.loc[j]) / b.scale[j])
    return float(np.clip((p - b.p_low[j]) / (b.p_high[j] - b.p_low[j]), 0, 1))


def _pdf(b: Beliefs, j: int, t: float) -> float:
    if b.kind == "table":
        h = (b.high[j] - b.low[j]) / GRID
        i = min(int((t - b.low[j]) / h), GRID - 1)
        return float((b.grid[j, i + 1] - b.grid[j, i]) / h)
    if b.kind == "logistic":
        z = special.logit(t)
        return float(
            stats.norm.pdf((z - b.loc[j]) / b.scale[j]) / b.scale[j] / (t * (1 - t)) / (b.p_high[j] - b.p_low[j])
        )
    return float(stats.norm.pdf((t - b.loc[j]) / b.scale[j]) / b.scale[j] / (b.p_high[j] - b.p_low[j]))


def _exactly(ps: list[float], j: int) -> float:
    d = np.zeros(len(ps) + 1)
    d[0] = 1.0
    for p in ps:
        d[1:] = d[1:] * (1 - p) + d[:-1] * p
        d[0] *= 1 - p
    return float(d[j])


def reference(b: Beliefs, lever: np.ndarray, threshold: float, a: int, rank: int) -> float:
    """P(a shown at `rank`) by scipy's adaptive quadrature over a's density, piece by piece."""
    m = lever.shape[0]

    def integrand(t: float) -> float:
        u = t * lever[a]
        if u <= threshold:
            return 0.0
        above = [1 - _cdf(b, c, u / lever[c]) for c in range(m) if c != a]
        return _pdf(b, a, t) * _exactly(above, rank - 1)

    cuts = np.linspace(b.low[a], b.high[a], (GRID if b.kind == "table" else 32) + 1)
    if b.low[a] < threshold / lever[a] < b.high[a]:  # the integrand jumps there
        cuts = np.sort(np.append(cuts, threshold / lever[a]))
    with warnings.catch_warnings():
        # quadpack says when roundoff keeps it from 1e-9 on a piece; its result is still far inside the
        # tolerance asserted below
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        return float(
            sum(integrate.quad(integrand, lo, hi, limit=80, epsabs=1e-9)[0] for lo, hi in itertools.pairwise(cuts))
        )


CASES = {
    "strong among young": (
        table(np.array([300.0] + [1.0] * 7), np.array([2700.0] + [39.0] * 7)),
        np.ones(8),
        -np.inf,
    ),
    "mixed with levers and a threshold": (
        table(np.array([3.0, 40, 12, 1, 7, 25]), np.array([60.0, 500, 100, 19, 300, 250])),
        np.array([1.0, 1.8, 0.7, 1.2, 2.0, 1.0]),
        0.06,
    ),
    "contextual, normal": (
        Beliefs.normal(np.array([0.05, 0.08, 0.02, 0.06, 0.9]), np.array([0.03, 0.02, 0.05, 0.01, 0.2])),
        np.array([1.0, 1.0, 1.5, 1.0, 0.1]),
        -np.inf,
    ),
    "contextual, logistic": (
        Beliefs.logistic(np.array([-3.0, -2.5, -4.0, -2.8]), np.array([0.6, 0.3, 1.2, 0.1])),
        np.array([1.0, 0.9, 1.3, 1.0]),
        0.02,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_placement_agrees_with_adaptive_quadrature(case: str) -> None:
    b, lever, threshold = CASES[case]
    m = lever.shape[0]
    every = placements(b, lever, threshold, np.arange(m), 3)  # every rank of every contender in one call
    for rank in (1, 2, 3):
        got = every[:, rank - 1]
        for a in range(m):
            want = reference(b, lever, threshold, a, rank)
            # the midpoint rule over 64 strata: within 1e-3, or 2% of the value
            assert abs(got[a] - want) <= max(1e-3, 0.02 * want), (case, rank, a, got[a], want)
    # and the probabilities of one rank over every contender add up to the chance that rank is shown
    first = every[:, 0]
    assert first.sum() <= 1.0 + 1e-3


def test_logged_probabilities_match_how_often_decisions_place_each_action() -> None:
    b, lever, _ = CASES["mixed with levers and a threshold"]
    m, runs = lever.shape[0], 6000
    placed = np.zeros((3, m))
    logged = np.zeros((3, m))
    rng = np.random.default_rng(11)
    for _ in range(runs):
        r = arbitrate(np.arange(m), b, lever, np.zeros(m, bool), 3, Sampling(rng))
        for rank, (a, p) in enumerate(zip(r.actions, r.probability, strict=True)):
            placed[rank, a] += 1
            logged[rank, a] += p
    seen = placed > 30
    freq = placed[seen] / runs
    mean_logged = logged[seen] / placed[seen]
    # each frequency within 4 of its standard errors of the probability the decisions logged
    assert (np.abs(freq - mean_logged) < 4 * np.sqrt(mean_logged * (1 - mean_logged) / runs)).all()


def test_importance_weights_average_one() -> None:
    # a candidate that puts every eligible action first with probability 1/m: with exact logged
    # probabilities, the weights (1/m) / p of what was logged first average exactly 1
    b, lever, _ = CASES["strong among young"]
    m, runs = lever.shape[0], 20000
    rng = np.random.default_rng(5)
    weights = np.empty(runs)
    for i in range(runs):
        r = arbitrate(np.arange(m), b, lever, np.zeros(m, bool), 1, Sampling(rng))
        weights[i] = (1 / m) / r.probability[0]
    se = weights.std() / math.sqrt(runs)
    assert abs(weights.mean() - 1.0) < 4 * se, (weights.mean(), se)


def _thompson_first(alpha: np.ndarray, beta: np.ndarray, lever: np.ndarray, points: int = 6000) -> np.ndarray:
    """Plain Thompson sampling on the untruncated Beta posteriors: P(each action comes first), by
    integrating over a grid of priorities where the winner's priority lies."""
    # the winning priority is at least every arm's 1e-9 quantile x lever and at most the largest 1 - 1e-12
    u_low = float((special.betaincinv(alpha, beta, 1e-9) * lever).max())
    u_high = float((special.betaincinv(alpha, beta, 1 - 1e-12) * lever).max())
    u = np.linspace(u_low, u_high, points)
    t = u[None, :] / lever[:, None]
    log_cdf = np.log(np.maximum(special.betainc(alpha[:, None], beta[:, None], np.minimum(t, 1.0)), 1e-300))
    everyone = log_cdf.sum(axis=0)
    pdf = stats.beta.pdf(np.minimum(t, 1.0), alpha[:, None], beta[:, None]) / lever[:, None]
    out: np.ndarray = integrate.trapezoid(pdf * np.exp(everyone[None, :] - log_cdf), u, axis=1)
    return out


@pytest.mark.parametrize(("m", "seed"), [(20, 1), (20, 2), (100, 3), (100, 4), (1000, 5)])
def test_first_place_matches_plain_thompson_sampling_on_random_catalogues(m: int, seed: int) -> None:
    """The stated bound: nba's first-place distribution is within 0.01 of plain Thompson sampling's in
    total variation, and within 0.004 for every single action, for catalogues of 20 to 1,000 actions with
    young and trained arms and levers from 0.5 to 2."""
    rng = np.random.default_rng(seed)
    trials = np.where(rng.random(m) < 0.5, rng.integers(0, 20, m), rng.integers(200, 5000, m)).astype(float)
    rate = rng.uniform(0.01, 0.12, m)
    alpha = 1.0 + np.round(trials * rate)
    beta = 19.0 + trials - np.round(trials * rate)
    lever = rng.uniform(0.5, 2.0, m)
    want = _thompson_first(alpha, beta, lever)
    assert want.sum() == pytest.approx(1.0, abs=2e-3)
    b = table(alpha, beta)
    got = placements(b, lever, -np.inf, np.arange(m), 1)[:, 0]
    assert 0.5 * np.abs(got - want).sum() < 0.01
    assert np.abs(got - want).max() < 0.004


def test_a_row_integrates_the_same_whichever_rows_are_asked_with_it() -> None:
    """Asked alone or among all the others (which changes the contenders left out of the product as
    unable to reach its nodes), a contender gets the same probabilities at every rank."""
    rng = np.random.default_rng(11)
    m = 30
    b = table(rng.integers(1, 60, m), rng.integers(20, 900, m))
    lever = rng.uniform(0.5, 2.0, m)
    rows = np.array([0, 7, 29])
    everyone = placements(b, lever, 0.01, np.arange(m), 4)
    alone = np.vstack([placements(b, lever, 0.01, rows[i : i + 1], 4) for i in range(3)])
    np.testing.assert_allclose(alone, everyone[rows], rtol=1e-12, atol=1e-15)
    assert placements(b, lever, 0.01, np.zeros(0, np.int64), 4).shape == (0, 4)
