"""Beta-Bernoulli Thompson sampling per arm x segment key, as numpy arrays (pure, no I/O).

An arm's posterior is Beta(prior_alpha + reward, prior_beta + trials - reward): every shown action is a
trial, and its reward is the best answer it got (accept 1, click 0.2, ...), so one trial never earns
more than 1. Exact quantiles come from scipy's inverse regularised incomplete beta; they are computed
once per model version, not per request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import betaincinv

from nba.domain import FloatArray

# Beyond these quantiles an arm is treated as unable to reach the top-k (see arbitration.contenders).
TAIL = 1e-4


@dataclass(frozen=True)
class ModelState:
    """Posterior of every action (rows, in rulebook order) for every segment key (columns)."""

    version: str
    alpha: FloatArray
    beta: FloatArray
    trials: FloatArray
    rewards: FloatArray
    mean: FloatArray
    low: FloatArray  # TAIL quantile
    high: FloatArray  # 1 - TAIL quantile

    @staticmethod
    def build(
        version: str,
        prior_alpha: FloatArray,
        prior_beta: FloatArray,
        action_ids: Sequence[str],
        keys: Sequence[str],
        counts: Mapping[tuple[str, str], tuple[float, float]],
    ) -> ModelState:
        """`counts[(action_id, key)] = (trials, rewards)`; counts of actions no longer in the rules are
        ignored, and kept in Redis so a rollback finds them again."""
        row = {a: i for i, a in enumerate(action_ids)}
        col = {k: j for j, k in enumerate(keys)}
        trials = np.zeros((len(action_ids), len(keys)))
        rewards = np.zeros_like(trials)
        for (action_id, key), (n, r) in counts.items():
            i, j = row.get(action_id), col.get(key)
            if i is not None and j is not None:
                trials[i, j] = n
                rewards[i, j] = r
        alpha, beta = posterior(prior_alpha, prior_beta, trials, rewards)
        return ModelState(
            version=version,
            alpha=alpha,
            beta=beta,
            trials=trials,
            rewards=rewards,
            mean=alpha / (alpha + beta),
            low=betaincinv(alpha, beta, TAIL),
            high=betaincinv(alpha, beta, 1.0 - TAIL),
        )


def posterior(
    prior_alpha: FloatArray, prior_beta: FloatArray, trials: FloatArray, rewards: FloatArray
) -> tuple[FloatArray, FloatArray]:
    rewards = np.clip(rewards, 0.0, None)
    alpha = prior_alpha[:, None] + rewards
    beta = prior_beta[:, None] + np.clip(trials - rewards, 0.0, None)
    return alpha, beta


def interval(alpha: FloatArray, beta: FloatArray, level: float = 0.95) -> tuple[FloatArray, FloatArray]:
    tail = (1.0 - level) / 2.0
    return betaincinv(alpha, beta, tail), betaincinv(alpha, beta, 1.0 - tail)
