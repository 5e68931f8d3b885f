"""Off-policy estimators over slots against hand-computed cases and simulated policies with known values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nba.evaluation.estimators import Z95, Slots, doubly_robust, ips, logged, overlap, snips


def slots(p: list[float], pi: list[float], r: list[float], **kw: list[float] | list[int]) -> Slots:
    n = len(p)
    return Slots(
        n=int(kw.get("n", [n])[0]),
        record=np.array(kw.get("record", list(range(n))), np.int64),
        rank=np.array(kw.get("rank", [1] * n), np.int64),
        p=np.array(p, float),
        pi=np.array(pi, float),
        reward=np.array(r, float),
        q=np.array(kw.get("q", [0.0] * n), float),
        direct=np.array(kw.get("direct", [0.0] * n), float),
        fill=np.array(kw.get("fill", [1.0] * n), float),
    )


def test_hand_computed_values() -> None:
    s = slots([0.5, 0.25, 1.0, 0.5], [1.0, 0.5, 0.0, 0.5], [1.0, 0.0, 1.0, 1.0])  # weights 2, 2, 0, 1
    est = ips(s)
    assert est.value == pytest.approx(0.75)  # (2 + 0 + 0 + 1) / 4
    half = Z95 * math.sqrt(2.75 / 3) / 2  # sample sd of (2, 0, 0, 1) over sqrt(4)
    assert (est.low, est.high) == pytest.approx((0.75 - half, 0.75 + half))
    # one rank, always filled: (2 + 0 + 0 + 1) / (2 + 2 + 0 + 1)
    assert snips(s).value == pytest.approx(3 / 5)
    assert overlap(s, 1).effective_sample_size == pytest.approx(25 / 9)
    assert overlap(s, 1).mean_weight == pytest.approx(5 / 4)
    dr = slots([0.5, 0.25, 1.0, 0.5], [1.0, 0.5, 0.0, 0.5], [1.0, 0.0, 1.0, 1.0], q=[0.5] * 4, direct=[0.4] * 4)
    assert doubly_robust(dr).value == pytest.approx((1.4 - 0.6 + 0.4 + 0.9) / 4)
    assert logged(s).value == pytest.approx(0.75)


def test_slots_of_one_record_add_up_and_ranks_are_normalised_apart() -> None:
    # two records, two ranks each: record terms are the sums of their slots
    s = slots(
        [0.5, 0.5, 0.25, 0.5],
        [0.5, 1.0, 0.5, 0.25],
        [1.0, 1.0, 0.0, 1.0],
        record=[0, 0, 1, 1],
        rank=[1, 2, 1, 2],
        n=[2],
    )
    assert ips(s).value == pytest.approx(((1 + 2) + (0 + 0.5)) / 2)
    # rank 1: w = 1, 2; w y = 1, 0 -> 1/3; rank 2: w = 2, 0.5; w y = 2, 0.5 -> 1
    assert snips(s).value == pytest.approx(1 / 3 + 1)


def test_on_policy_every_estimator_is_the_mean_reward() -> None:
    s = slots([0.2, 0.7, 0.4], [0.2, 0.7, 0.4], [1.0, 0.0, 0.5])
    assert ips(s).value == pytest.approx(0.5)
    assert snips(s).value == pytest.approx(0.5)
    assert overlap(s, 1).effective_sample_size == pytest.approx(3)


def test_bad_logs_are_refused() -> None:
    with pytest.raises(ValueError, match="probability 0"):
        slots([0.0], [1.0], [1.0])
    with pytest.raises(ValueError, match="candidate probabilities"):
        slots([0.5], [1.5], [1.0])


def _known_policy_logs(seed: int, n: int) -> Slots:
    """Logs of a uniform policy over 3 actions at two ranks (accept rates 0.1 / 0.5 / 0.3 at rank 1,
    half that at rank 2); the candidate puts action 1 first with probability 0.8 and action 2 otherwise,
    and the other one second. The reward model is off by 0.05 everywhere: DR must stay consistent."""
    rng = np.random.default_rng(seed)
    rates = np.array([0.1, 0.5, 0.3])
    shown = np.argsort(rng.random((n, 3)), axis=1)[:, :2]  # uniform ordered pairs of distinct actions
    rank_scale = np.array([1.0, 0.5])
    candidate = np.array([[0.0, 0.8, 0.2], [0.0, 0.2, 0.8]])  # rank -> action -> the candidate's probability
    q_true = rates[None, :] * rank_scale[:, None]  # rank -> action -> accept rate
    ranks = np.tile([0, 1], n)
    acts = shown.reshape(-1)
    return Slots(
        n=n,
        record=np.repeat(np.arange(n), 2),
        rank=ranks + 1,
        p=np.full(2 * n, 1 / 3),
        pi=candidate[ranks, acts],
        reward=(rng.random(2 * n) < q_true[ranks, acts]).astype(float),
        q=q_true[ranks, acts] + 0.05,
        direct=(candidate * q_true).sum(axis=1)[ranks] + 0.05,
        fill=np.ones(2 * n),
    )


def test_estimates_of_a_known_policy_cover_its_true_value() -> None:
    """The 95% intervals hold the true value 0.8 x (0.5 + 0.15) + 0.2 x (0.3 + 0.25) = 0.63 in about 95% of
    200 seeded worlds: the intervals are neither too narrow (misses) nor vacuous (width)."""
    truth = 0.8 * (0.5 + 0.15) + 0.2 * (0.3 + 0.25)
    covered = {"ips": 0, "snips": 0, "doubly_robust": 0}
    widths: dict[str, list[float]] = {k: [] for k in covered}
    for seed in range(200):
        s = _known_policy_logs(seed, 2000)
        for name, est in (("ips", ips(s)), ("snips", snips(s)), ("doubly_robust", doubly_robust(s))):
            covered[name] += est.low <= truth <= est.high
            widths[name].append(est.high - est.low)
    for name, hits in covered.items():
        assert 180 <= hits <= 199, (name, hits)  # binomial(200, 0.95): 183-196 holds 99% of the mass
        assert float(np.mean(widths[name])) < 0.1, name
