"""Off-policy estimators against hand-computed cases and a simulated policy with a known value."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nba.evaluation.estimators import Z95, bootstrap_check, doubly_robust, effective_sample_size, ips, snips

P = np.array([0.5, 0.25, 1.0, 0.5])
PI = np.array([1.0, 0.5, 0.0, 0.5])
R = np.array([1.0, 0.0, 1.0, 1.0])  # weights: 2, 2, 0, 1


def test_hand_computed_values() -> None:
    est = ips(P, PI, R)
    assert est.value == pytest.approx(0.75)  # (2 + 0 + 0 + 1) / 4
    half = Z95 * math.sqrt(2.75 / 3) / 2  # sample sd of (2, 0, 0, 1) over sqrt(4)
    assert (est.low, est.high) == pytest.approx((0.75 - half, 0.75 + half))
    assert snips(P, PI, R).value == pytest.approx(3 / 5)
    assert effective_sample_size(P, PI) == pytest.approx(25 / 9)
    q_logged, q_expected = np.full(4, 0.5), np.full(4, 0.4)
    assert doubly_robust(P, PI, R, q_logged, q_expected).value == pytest.approx((1.4 - 0.6 + 0.4 + 0.9) / 4)


def test_on_policy_every_estimator_is_the_mean_reward() -> None:
    p = np.array([0.2, 0.7, 0.4])
    r = np.array([1.0, 0.0, 0.5])
    assert ips(p, p, r).value == pytest.approx(0.5)
    assert snips(p, p, r).value == pytest.approx(0.5)
    assert effective_sample_size(p, p) == pytest.approx(3)


def test_bad_logs_are_refused() -> None:
    with pytest.raises(ValueError, match="probability 0"):
        ips(np.array([0.0]), np.array([1.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="equal-length"):
        ips(np.array([0.5]), np.array([1.0, 0.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="nothing to estimate"):
        snips(np.array([0.5]), np.array([0.0]), np.array([1.0]))


@pytest.mark.parametrize("seed", range(5))
def test_estimates_of_a_known_policy_cover_its_true_value(seed: int) -> None:
    """Logs of a uniform policy over 3 actions with accept rates 0.1 / 0.5 / 0.3; the candidate picks
    action 1 with probability 0.8 and action 2 otherwise: true value 0.8 x 0.5 + 0.2 x 0.3 = 0.46."""
    rng = np.random.default_rng(seed)
    n = 4000
    rates = np.array([0.1, 0.5, 0.3])
    candidate = np.array([0.0, 0.8, 0.2])
    shown = rng.integers(0, 3, size=n)
    reward = (rng.random(n) < rates[shown]).astype(float)
    p = np.full(n, 1 / 3)
    pi = candidate[shown]
    truth = float(candidate @ rates)
    q = rates + 0.05  # a slightly wrong reward model: DR must stay consistent
    for est in (
        ips(p, pi, reward),
        snips(p, pi, reward),
        doubly_robust(p, pi, reward, q[shown], np.full(n, float(candidate @ q))),
    ):
        assert est.low <= truth <= est.high, (est, truth)
    low, high = bootstrap_check(p, pi, reward, rng)
    normal = ips(p, pi, reward)
    assert abs(low - normal.low) < 0.02
    assert abs(high - normal.high) < 0.02
