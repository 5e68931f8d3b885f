"""Forward decay (learning/forgetting.py): added weights and read factors give plain exponential decay."""

from __future__ import annotations

import numpy as np
import pytest

from nba.learning import forgetting


def test_weighted_sums_read_later_equal_exponentially_decayed_sums() -> None:
    rng = np.random.default_rng(3)
    landmark, h = 1_000_000.0, 3600.0
    times = landmark + rng.uniform(0, 10 * h, 500)
    values = rng.random(500)
    now = landmark + 12 * h
    stored = float((values * forgetting.weights(times, landmark, h)).sum())
    decayed = float((values * 0.5 ** ((now - times) / h)).sum())
    assert stored * forgetting.factor(now, landmark, h) == pytest.approx(decayed, rel=1e-12)


def test_without_a_half_life_nothing_changes() -> None:
    times = np.array([1.0, 1e9])
    assert forgetting.weights(times, 0.0, 0.0).tolist() == [1.0, 1.0]
    assert forgetting.factor(1e12, 0.0, 0.0) == 1.0
    assert not forgetting.needs_rebase(1e12, 0.0, 0.0, 0.0)


def test_readers_move_in_steps_of_a_64th_of_the_half_life() -> None:
    h = 6400.0
    assert forgetting.reader_time(100_099.0, 0.0, h) == 100_000.0
    assert forgetting.reader_time(100_100.0, 0.0, h) == 100_100.0
    assert forgetting.reader_time(5.0, 10.0, h) == 10.0  # never before the landmark


def test_the_learner_rebases_on_a_new_half_life_or_large_weights() -> None:
    assert forgetting.needs_rebase(0.0, 0.0, 0.0, 3600.0)  # forgetting switched on
    assert forgetting.needs_rebase(0.0, 0.0, 3600.0, 0.0)  # and off
    assert not forgetting.needs_rebase(32 * 3600.0, 0.0, 3600.0, 3600.0)
    assert forgetting.needs_rebase(32 * 3600.0 + 1, 0.0, 3600.0, 3600.0)
