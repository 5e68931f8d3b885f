"""Arbitration: top-k by sampled priority, the no-action threshold, and the accuracy of probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from nba.decision.arbitration import (
    DRAW_BUDGET,
    MIN_DRAWS,
    SAMPLED_MAX,
    Beliefs,
    Ranking,
    Sampling,
    Tally,
    arbitrate,
    contenders,
    random_order,
    top_k,
)
from nba.learning.bandit import ModelState


def _model(alpha: list[float], beta: list[float]) -> ModelState:
    n = len(alpha)
    return ModelState.build("t", np.array(alpha), np.array(beta), [str(i) for i in range(n)], ["k"], {})


def _run(
    alpha: list[float],
    beta: list[float],
    lever: list[float],
    limit: int,
    seed: int,
    draws: int = 256,
    no_action: list[bool] | None = None,
) -> Ranking:
    m = _model(alpha, beta)
    n = len(alpha)
    na = np.array(no_action or [False] * n)
    beliefs = Beliefs.beta(m.alpha[:, 0], m.beta[:, 0], m.low[:, 0], m.high[:, 0])
    return arbitrate(np.arange(n), beliefs, np.array(lever), na, limit, Sampling(np.random.default_rng(seed), draws))


def test_probability_matches_the_exact_chance_of_ranking_first() -> None:
    a, b = (3.0, 30.0), (5.0, 40.0)
    # exact P(X > Y) for X ~ Beta(a), Y ~ Beta(b), equal levers
    exact, _ = integrate.quad(lambda x: stats.beta.pdf(x, *a) * stats.beta.cdf(x, *b), 0, 1)
    draws = 1024
    se = math.sqrt(exact * (1 - exact) / draws)
    for seed in range(20):
        r = _run([a[0], b[0]], [a[1], b[1]], [1.0, 1.0], 1, seed, draws)
        p_first = r.probability[0] if r.actions[0] == 0 else 1 - r.probability[0]
        assert abs(p_first - exact) < 4 * se, (seed, p_first, exact)


def test_the_logged_probability_is_never_zero_for_what_was_chosen() -> None:
    for seed in range(50):
        r = _run([1, 1, 1], [1, 1, 1], [1, 1, 1], 3, seed, draws=16)
        assert (r.probability >= 1 / 16).all()


def test_seeded_runs_are_deterministic() -> None:
    one = _run([2, 3, 4], [20, 20, 20], [1, 2, 3], 2, seed=11)
    two = _run([2, 3, 4], [20, 20, 20], [1, 2, 3], 2, seed=11)
    assert one.actions.tolist() == two.actions.tolist()
    assert one.probability.tolist() == two.probability.tolist()


def test_no_action_is_a_threshold_and_never_returned() -> None:
    # action 0 is worth 10 x ~0.5; action 1 worth 1 x ~0.5; "do nothing" scores 2 flat
    r = _run([50, 50, 1], [50, 50, 1], [10, 1, 2], 3, seed=1, no_action=[False, False, True])
    assert r.actions.tolist() == [0]
    assert r.probability[0] == 1.0
    nothing = _run([50, 1], [50, 1], [1, 2], 3, seed=1, no_action=[False, True])
    assert nothing.actions.tolist() == []


def test_contenders_drop_only_arms_that_cannot_reach_the_top_k() -> None:
    m = _model([500, 5, 1, 400], [500, 995, 999, 600])  # means 0.5, 0.005, 0.001, 0.4
    beliefs = Beliefs.beta(m.alpha[:, 0], m.beta[:, 0], m.low[:, 0], m.high[:, 0])
    keep = contenders(np.arange(4), np.ones(4), beliefs, np.zeros(4, bool), 2)
    assert keep.tolist() == [0, 3]
    # the pruned arms indeed never win over many draws
    r = _run([500, 5, 1, 400], [500, 995, 999, 600], [1, 1, 1, 1], 2, seed=3, draws=2048)
    assert set(r.contenders.tolist()) == {0, 3}


def test_many_young_actions_sample_a_bounded_set_picked_optimistically() -> None:
    # 300 untried actions with the same wide prior: the bound prunes nothing, so the ones with the
    # highest optimistic priority (here: the largest levers) are sampled, and the do-nothing threshold
    n = 300
    lever = np.linspace(1.0, 2.0, n)
    na = np.zeros(n, bool)
    na[7] = True  # a low-value do-nothing threshold still takes part
    m = _model([1.0] * n, [19.0] * n)
    beliefs = Beliefs.beta(m.alpha[:, 0], m.beta[:, 0], m.low[:, 0], m.high[:, 0])
    keep = contenders(np.arange(n), lever, beliefs, na, 3)
    assert keep.tolist() == [7, *range(n - SAMPLED_MAX, n)]
    assert contenders(np.arange(n), lever, beliefs, na, 10).shape[0] == 40 + 1  # 4 x the limit when larger
    r = arbitrate(np.arange(n), beliefs, lever, na, 3, Sampling(np.random.default_rng(1), 256))
    assert r.draws * r.contenders.shape[0] <= DRAW_BUDGET + MIN_DRAWS
    assert r.draws >= MIN_DRAWS
    assert set(r.actions.tolist()) <= set(range(n - SAMPLED_MAX, n))


def test_logged_probabilities_are_those_of_the_preselecting_policy() -> None:
    # 60 young actions: how often each one comes first over many decisions matches the probabilities
    # the decisions logged for it (both describe the same policy, preselection included)
    n, runs = 60, 3000
    lever = np.linspace(1.0, 1.5, n)
    m = _model([1.0] * n, [19.0] * n)
    beliefs = Beliefs.beta(m.alpha[:, 0], m.beta[:, 0], m.low[:, 0], m.high[:, 0])
    firsts = np.zeros(n)
    logged = np.zeros(n)
    for seed in range(runs):
        r = arbitrate(np.arange(n), beliefs, lever, np.zeros(n, bool), 1, Sampling(np.random.default_rng(seed), 256))
        firsts[r.actions[0]] += 1
        logged[r.actions[0]] += r.probability[0]
    shown = firsts > 0
    # E[logged p | chosen] = P(chosen) + (1 - P(chosen)) / draws: sample 0 is one of the draws
    draws = DRAW_BUDGET // SAMPLED_MAX
    freq = firsts / runs
    mean_logged = logged[shown] / firsts[shown]
    expected = freq[shown] + (1 - freq[shown]) / draws
    assert np.abs(mean_logged - expected).max() < 0.05
    assert firsts[: n - SAMPLED_MAX].sum() == 0


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 7])
def test_top_k_agrees_with_a_full_sort(k: int) -> None:
    priority = np.random.default_rng(k).random((50, 12))
    assert (top_k(priority, k) == np.argsort(-priority, axis=1, kind="stable")[:, :k]).all()


def test_top_k_order_and_limits() -> None:
    r = _run([90, 50, 10], [10, 50, 90], [1, 1, 1], 2, seed=5)
    assert r.actions.tolist() == [0, 1]
    assert (np.diff(r.score) <= 0).all()
    empty = _run([], [], [], 3, seed=5)
    assert empty.actions.tolist() == []


def test_normal_beliefs_probability_matches_the_exact_chance() -> None:
    # X ~ N(0.30, 0.05^2), Y ~ N(0.25, 0.08^2): P(X > Y) = Phi(0.05 / sqrt(0.05^2 + 0.08^2))
    exact = float(stats.norm.cdf(0.05 / math.sqrt(0.05**2 + 0.08**2)))
    draws = 1024
    se = math.sqrt(exact * (1 - exact) / draws)
    beliefs = Beliefs.normal(np.array([0.30, 0.25]), np.array([0.05, 0.08]))
    for seed in range(20):
        r = arbitrate(
            np.arange(2), beliefs, np.ones(2), np.zeros(2, bool), 1, Sampling(np.random.default_rng(seed), draws)
        )
        p_first = r.probability[0] if r.actions[0] == 0 else 1 - r.probability[0]
        assert abs(p_first - exact) < 4 * se, (seed, p_first, exact)


def test_exploration_zero_is_greedy_and_narrows_the_bounds() -> None:
    wide = Beliefs.normal(np.array([0.30, 0.25]), np.array([0.05, 0.08]), exploration=1.0)
    none = Beliefs.normal(np.array([0.30, 0.25]), np.array([0.05, 0.08]), exploration=0.0)
    assert (none.low == none.mean).all()
    assert (none.high == none.mean).all()
    assert (wide.high > none.high).all()
    for seed in range(10):
        r = arbitrate(np.arange(2), none, np.ones(2), np.zeros(2, bool), 1, Sampling(np.random.default_rng(seed), 64))
        assert r.actions.tolist() == [0]
        assert r.probability[0] == 1.0
    beta = Beliefs.beta(np.array([3.0]), np.array([30.0]), np.array([0.01]), np.array([0.3]), exploration=0.5)
    mean = 3 / 33
    assert math.isclose(beta.high[0], mean + 0.5 * (0.3 - mean))
    theta = beta.sample(np.random.default_rng(1), 4000)
    full = Beliefs.beta(np.array([3.0]), np.array([30.0]), np.array([0.01]), np.array([0.3])).sample(
        np.random.default_rng(1), 4000
    )
    assert math.isclose(float(theta.std()), 0.5 * float(full.std()), rel_tol=0.05)


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


def _young(n: int) -> Beliefs:
    m = _model([1.0] * n, [19.0] * n)
    return Beliefs.beta(m.alpha[:, 0], m.beta[:, 0], m.low[:, 0], m.high[:, 0])


def test_a_tally_logs_the_frequency_of_the_policy_that_ran() -> None:
    # as above, but the decisions share one Tally: each uses one sample, the logged probability comes
    # from every sample of the situation so far, and it matches how often each action really comes first
    n, runs = 60, 3000
    lever = np.linspace(1.0, 1.5, n)
    beliefs = _young(n)
    tally = Tally()
    rng = np.random.default_rng(7)
    firsts = np.zeros(n)
    logged = np.zeros(n)
    for _ in range(runs):
        r = arbitrate(np.arange(n), beliefs, lever, np.zeros(n, bool), 1, Sampling(rng, 256, tally=tally))
        firsts[r.actions[0]] += 1
        logged[r.actions[0]] += r.probability[0]
    assert len(tally) == 1
    assert r.draws >= runs  # every decision's sample 0 is among the counted samples
    shown = firsts > 0
    freq = firsts / runs
    # 4 standard errors of each frequency
    assert (np.abs(logged[shown] / firsts[shown] - freq[shown]) < 4 * np.sqrt(freq[shown] / runs) + 0.01).all()
    assert firsts[: n - SAMPLED_MAX].sum() == 0


def test_a_tally_converges_on_the_exact_chance_of_ranking_first() -> None:
    a, b = (3.0, 30.0), (5.0, 40.0)
    exact, _ = integrate.quad(lambda x: stats.beta.pdf(x, *a) * stats.beta.cdf(x, *b), 0, 1)
    m = _model([a[0], b[0]], [a[1], b[1]])
    beliefs = Beliefs.beta(m.alpha[:, 0], m.beta[:, 0], m.low[:, 0], m.high[:, 0])
    tally = Tally()
    rng = np.random.default_rng(3)
    for _ in range(5000):
        r = arbitrate(np.arange(2), beliefs, np.ones(2), np.zeros(2, bool), 1, Sampling(rng, 256, tally=tally))
    p_first = r.probability[0] if r.actions[0] == 0 else 1 - r.probability[0]
    assert abs(p_first - exact) < 4 * math.sqrt(exact * (1 - exact) / r.draws), (p_first, exact, r.draws)


def test_a_tally_uses_each_sample_once_and_draws_a_new_block_when_they_run_out() -> None:
    n = 8
    beliefs = _young(n)
    lever = np.ones(n)
    na = np.zeros(n, bool)
    tally = Tally()
    block = DRAW_BUDGET // n
    seen = [
        arbitrate(np.arange(n), beliefs, lever, na, 3, Sampling(np.random.default_rng(1), 256, tally=tally))
        for _ in range(block + 1)
    ]
    assert [r.draws for r in seen] == [block] * block + [2 * block]
    draws = [tuple(r.draw.tolist()) for r in seen[:block]]
    assert len(set(draws)) == block  # distinct samples, though every call got the same seed
    # the same seed without a tally draws the same first block: sample 0 of each decision is its row
    alone = arbitrate(np.arange(n), beliefs, lever, na, 3, Sampling(np.random.default_rng(1), 256))
    assert alone.actions.tolist() == seen[0].actions.tolist()


def test_a_tally_keeps_situations_apart_and_forgets_the_least_recently_used() -> None:
    tally = Tally(situations=2)
    lever = np.ones(4)
    na = np.zeros(4, bool)
    rng = np.random.default_rng(1)

    def decide(beta: float) -> Ranking:
        beliefs = _model([1.0] * 4, [beta] * 4)
        b = Beliefs.beta(beliefs.alpha[:, 0], beliefs.beta[:, 0], beliefs.low[:, 0], beliefs.high[:, 0])
        return arbitrate(np.arange(4), b, lever, na, 1, Sampling(rng, 256, tally=tally))

    def draws_samples(beta: float) -> bool:
        """Whether deciding in this situation drew new samples (a situation remembered mid-block does not)."""
        before = rng.bit_generator.state
        decide(beta)
        return bool(rng.bit_generator.state != before)

    assert draws_samples(19.0)
    assert not draws_samples(19.0)  # the same situation: the block's next sample
    assert draws_samples(9.0)  # another model state is another situation, counted apart
    assert len(tally) == 2
    assert not draws_samples(19.0)  # used again: 9.0 is now the least recently used
    assert draws_samples(4.0)
    assert len(tally) == 2
    assert not draws_samples(19.0)  # still remembered
    assert draws_samples(9.0)  # forgotten, so started afresh
    # explore=False and the contextual model's per-customer beliefs do not use the tally
    normal = Beliefs.normal(np.array([0.3, 0.2]), np.array([0.05, 0.05]))
    arbitrate(np.arange(2), normal, np.ones(2), np.zeros(2, bool), 1, Sampling(rng, 64, tally=tally))
    arbitrate(np.arange(4), _young(4), lever, na, 1, Sampling(rng, 64, explore=False, tally=tally))
    assert len(tally) == 2


def test_a_tally_stays_within_its_memory_budget() -> None:
    lever = np.ones(50)
    na = np.zeros(50, bool)
    rng = np.random.default_rng(1)
    one = Tally()
    arbitrate(np.arange(50), _young(50), lever, na, 3, Sampling(rng, 256, tally=one))
    per_situation = one.nbytes
    assert per_situation > 64 * 16 * 8 * 2  # a block of 64 samples of 16 contenders, and their priorities
    small = Tally(max_bytes=3 * per_situation)
    for beta in range(10, 30):  # 20 model states: 20 situations of about the same size
        m = _model([1.0] * 50, [float(beta)] * 50)
        b = Beliefs.beta(m.alpha[:, 0], m.beta[:, 0], m.low[:, 0], m.high[:, 0])
        arbitrate(np.arange(50), b, lever, na, 3, Sampling(rng, 256, tally=small))
        assert small.nbytes <= small.max_bytes
    assert 2 <= len(small) <= 3
