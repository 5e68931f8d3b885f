"""Arbitration: top-k by sampled priority, the do-nothing threshold, exact preselection, the situations
cache, and the control group's ordering. The probabilities themselves: test_placement.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from nba.decision.arbitration import (
    Ranking,
    Sampling,
    Situation,
    Situations,
    arbitrate,
    contenders,
    random_order,
    top_k_rows,
)
from nba.decision.beliefs import Beliefs
from nba.learning.bandit import TAIL, ModelState


def table(alpha: list[float], beta: list[float], exploration: float = 1.0) -> Beliefs:
    n = len(alpha)
    m = ModelState.build("t", np.array(alpha, float), np.array(beta, float), [str(i) for i in range(n)], ["k"], {})
    return Beliefs.table(m.mean[:, 0], m.low[:, 0], m.high[:, 0], m.table[:, 0], exploration)


def _run(
    alpha: list[float],
    beta: list[float],
    lever: list[float],
    limit: int,
    seed: int,
    no_action: list[bool] | None = None,
) -> Ranking:
    n = len(alpha)
    na = np.array(no_action or [False] * n, bool)
    b = table(alpha, beta)
    return arbitrate(np.arange(n), b, np.array(lever, float), na, limit, Sampling(np.random.default_rng(seed)))


def test_a_strong_action_among_many_young_ones_is_picked_as_thompson_sampling_picks_it() -> None:
    # the case that a cap on sampled contenders got wrong: Beta(300, 2700) against 16 x Beta(1, 39)
    # comes first 76.3% of the time under Thompson sampling; a preselection of the 16 most optimistic
    # arms never sampled it
    exact, _ = integrate.quad(
        lambda x: stats.beta.pdf(x, 300, 2700) * stats.beta.cdf(x, 1, 39) ** 16, 0, 1, points=[0.1], limit=200
    )
    b = table([300.0] + [1.0] * 16, [2700.0] + [39.0] * 16)
    rng = np.random.default_rng(3)
    runs = 4000
    firsts, logged = 0, []
    for _ in range(runs):
        r = arbitrate(np.arange(17), b, np.ones(17), np.zeros(17, bool), 1, Sampling(rng))
        if r.actions[0] == 0:
            firsts += 1
            logged.append(r.probability[0])
    se = math.sqrt(exact * (1 - exact) / runs)
    assert abs(firsts / runs - exact) < 4 * se, (firsts / runs, exact)
    assert abs(float(np.mean(logged)) - exact) < 0.005  # every decision logs the integrated probability


def test_seeded_runs_are_deterministic() -> None:
    one = _run([2, 3, 4], [20, 20, 20], [1, 2, 3], 2, seed=11)
    two = _run([2, 3, 4], [20, 20, 20], [1, 2, 3], 2, seed=11)
    assert one.actions.tolist() == two.actions.tolist()
    assert one.probability.tolist() == two.probability.tolist()


def test_no_action_is_a_threshold_and_never_returned() -> None:
    # action 0 is worth 10 x ~0.5; action 1 worth 1 x ~0.5; "do nothing" scores 2 flat
    r = _run([50, 50, 1], [50, 50, 1], [10, 1, 2], 3, seed=1, no_action=[False, False, True])
    assert r.actions.tolist() == [0]
    assert r.probability[0] == pytest.approx(1.0)
    nothing = _run([50, 1], [50, 1], [1, 2], 3, seed=1, no_action=[False, True])
    assert nothing.actions.tolist() == []


def test_preselection_drops_exactly_the_arms_that_can_never_be_shown() -> None:
    b = table([500, 5, 1, 400, 60], [500, 995, 999, 600, 40])  # means 0.5, 0.005, 0.001, 0.4, 0.6
    lever = np.array([1.0, 1.0, 1.0, 1.0, 0.3])
    keep = contenders(b, lever, np.zeros(5, bool), -np.inf, 2)
    assert keep.tolist() == [0, 3]
    # a threshold of 0.35: only what can beat it, whatever the limit
    assert contenders(b, lever, np.zeros(5, bool), 0.35, 5).tolist() == [0, 3]
    # and the pruned ones never win: the supports are bounded, so this holds for every draw
    rng = np.random.default_rng(3)
    for _ in range(500):
        r = arbitrate(np.arange(5), b, lever, np.zeros(5, bool), 2, Sampling(rng))
        assert set(r.actions.tolist()) <= {0, 3}
    assert (b.low > 0).all()
    assert (b.high < 1).all()
    assert stats.beta.cdf(b.high[0], 500, 500) == pytest.approx(1 - TAIL, abs=1e-9)


def test_many_young_actions_are_all_sampled() -> None:
    # 300 untried actions: nothing can be ruled out, so every one takes part (no cap on contenders)
    n = 300
    lever = np.linspace(1.0, 2.0, n)
    b = table([1.0] * n, [19.0] * n)
    r = arbitrate(np.arange(n), b, lever, np.zeros(n, bool), 3, Sampling(np.random.default_rng(1)))
    assert r.contenders.shape[0] == n
    firsts = np.zeros(n)
    rng = np.random.default_rng(2)
    for _ in range(2000):
        firsts[arbitrate(np.arange(n), b, lever, np.zeros(n, bool), 1, Sampling(rng)).actions[0]] += 1
    assert firsts[: n // 2].sum() > 0  # low-lever young actions still win sometimes


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 7])
def test_top_k_agrees_with_a_full_stable_sort(k: int) -> None:
    rng = np.random.default_rng(k)
    for n in (7, 12, 50):
        priority = rng.random((20, n))
        priority[:, n // 2] = priority[:, 0]  # a tie: the earlier one first
        want = np.argsort(-priority, axis=1, kind="stable")[:, :k]
        assert (top_k_rows(priority, k) == want).all()


def test_top_k_order_and_limits() -> None:
    r = _run([90, 50, 10], [10, 50, 90], [1, 1, 1], 2, seed=5)
    assert r.actions.tolist() == [0, 1]
    assert (np.diff(r.score) <= 0).all()
    empty = _run([], [], [], 3, seed=5)
    assert empty.actions.tolist() == []


def test_exploration_zero_is_greedy_and_certain() -> None:
    none = Beliefs.normal(np.array([0.30, 0.25]), np.array([0.05, 0.08]), exploration=0.0)
    assert (none.low == none.mean).all()
    assert (none.high == none.mean).all()
    for seed in range(10):
        r = arbitrate(np.arange(2), none, np.ones(2), np.zeros(2, bool), 1, Sampling(np.random.default_rng(seed)))
        assert r.actions.tolist() == [0]
        assert r.probability[0] == 1.0
    half = table([3.0], [30.0], exploration=0.5)
    full = table([3.0], [30.0])
    mean = 3 / 33
    assert math.isclose(half.high[0], mean + 0.5 * (full.high[0] - mean))
    rng = np.random.default_rng(1)
    draws_half = np.array([half.sample(rng)[0] for _ in range(4000)])
    draws_full = np.array([full.sample(rng)[0] for _ in range(4000)])
    assert math.isclose(float(draws_half.std()), 0.5 * float(draws_full.std()), rel_tol=0.08)


def test_ranking_by_the_means_breaks_ties_by_position_and_logs_certainty() -> None:
    b = Beliefs.points(np.array([0.2, 0.3, 0.3, 0.1]))
    r = arbitrate(np.arange(4), b, np.ones(4), np.zeros(4, bool), 3, Sampling(np.random.default_rng(0), False))
    assert r.actions.tolist() == [1, 2, 0]
    assert r.probability.tolist() == [1.0, 1.0, 1.0]


def test_random_order_is_uniform_and_logs_one_over_m() -> None:
    beliefs = Beliefs.normal(np.array([0.9, 0.1, 0.1, 0.5]), np.zeros(4))
    na = np.array([False, False, False, True])
    firsts = np.zeros(4)
    for seed in range(3000):
        r = random_order(np.arange(4), beliefs, np.ones(4), na, 2, np.random.default_rng(seed))
        assert r.probability.tolist() == [1 / 3, 1 / 3]
        assert 3 not in r.actions.tolist()  # the do-nothing threshold is never shown
        firsts[r.actions[0]] += 1
    # each of the three actions comes first a third of the time (4 standard errors)
    assert (abs(firsts[:3] / 3000 - 1 / 3) < 4 * math.sqrt(2 / 9 / 3000)).all()


def test_a_cached_situation_integrates_each_placement_once_and_decides_like_a_fresh_one() -> None:
    b = table([1.0] * 8, [19.0] * 8)
    lever = np.linspace(1, 2, 8)
    na = np.zeros(8, bool)
    s = Situation(np.arange(8), b, lever, na, 3)
    assert np.isnan(s.probability).all()
    seen = [s.decide(np.random.default_rng(i)) for i in range(50)]
    fresh = [arbitrate(np.arange(8), b, lever, na, 3, Sampling(np.random.default_rng(i))) for i in range(50)]
    for a, f in zip(seen, fresh, strict=True):
        assert a.actions.tolist() == f.actions.tolist()
        assert np.allclose(a.probability, f.probability)
    assert (~np.isnan(s.probability)).sum() >= 8  # filled in as placements came up
    # a block of draws: each decision takes the next, and the placements are the same whichever drew them
    blocked = Situation(np.arange(8), b, lever, na, 3, block=16)
    rng = np.random.default_rng(1)
    drawn = [tuple(blocked.decide(rng).draw.tolist()) for _ in range(40)]
    assert len(set(drawn)) == 40
    assert blocked.theta.shape == (16, 8)


def test_situations_are_kept_per_model_and_forget_the_least_recently_used() -> None:
    cache = Situations(size=2)
    model_a, model_b = object(), object()
    b = table([1.0] * 4, [19.0] * 4)
    one = Situation(np.arange(4), b, np.ones(4), np.zeros(4, bool), 1)
    cache.put("x", model_a, one)
    assert cache.get("x", model_a) is one
    assert cache.get("x", model_b) is None  # another model: not this situation
    cache.put("y", model_a, Situation(np.arange(4), b, np.ones(4), np.zeros(4, bool), 2))
    cache.get("x", model_a)  # x is now the more recently used
    cache.put("z", model_a, Situation(np.arange(4), b, np.ones(4), np.zeros(4, bool), 3))
    assert len(cache) == 2
    assert cache.get("y", model_a) is None
    assert cache.get("x", model_a) is one
    small = Situations(max_bytes=3 * one.nbytes)
    for i in range(10):
        small.put(i, model_a, Situation(np.arange(4), b, np.ones(4), np.zeros(4, bool), 1))
        assert small.nbytes <= small.max_bytes
    assert len(small) == 3
