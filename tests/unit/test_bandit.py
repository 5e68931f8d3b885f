"""The per-segment model's posteriors (learning/bandit.py): seeded, no I/O."""

from __future__ import annotations

import numpy as np
import pytest

from nba.learning.bandit import posterior


def test_a_segment_new_to_an_action_starts_from_its_record_elsewhere() -> None:
    prior_alpha, prior_beta = np.array([1.0, 1.0]), np.array([19.0, 19.0])
    trials = np.array([[1000.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    rewards = np.array([[200.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    alpha, beta = posterior(prior_alpha, prior_beta, trials, rewards)
    mean = alpha / (alpha + beta)
    # 20% in the first key: the other keys start near it, with the rules' strength of 20 pseudo-trials
    assert mean[0, 1] == pytest.approx(201 / 1020)
    assert (alpha + beta)[0, 1] == pytest.approx(20.0)
    # the key with the data is its own answers plus a prior from the others (none: the rules' 5%)
    assert (alpha[0, 0], beta[0, 0]) == (201.0, 819.0)
    # an action with no answers anywhere keeps the rules' prior
    assert (alpha[1].tolist(), beta[1].tolist()) == ([1.0] * 3, [19.0] * 3)


def test_a_cells_own_answers_outweigh_what_it_borrowed() -> None:
    alpha, beta = posterior(np.array([1.0]), np.array([19.0]), np.array([[5000.0, 2000.0]]), np.array([[500.0, 20.0]]))
    mean = alpha / (alpha + beta)
    assert mean[0, 1] == pytest.approx(0.01, abs=0.001)  # 1% of its own 2,000, not the 10% of the other
    assert mean[0, 0] == pytest.approx(0.1, abs=0.001)
