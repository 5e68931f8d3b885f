"""Arbitration: priority = propensity x value x weight, top-k, and the probability of each placement.

Thompson sampling has no closed form for "the chance this arm lands at rank r", so the policy draws
`draws` posterior samples at once: sample 0 *is* the decision and all samples together estimate each
shown action's probability at its rank (standard error <= 0.5/sqrt(draws); the chosen action's estimate
is never 0 because sample 0 counts). Arms whose (1 - TAIL) posterior quantile cannot beat the k-th best
TAIL quantile are not sampled: such an arm reaches the top-k with probability below (k + 1) x TAIL,
and leaving it out bounds the work by the contenders, not by all eligible actions.

The work is bounded too: with many contenders (wide posteriors early in an action's life) the number
of joint samples drops so that samples x contenders stays within DRAW_BUDGET, never below MIN_DRAWS;
the record of each decision keeps the number used, so offline evaluation knows its precision.

A `no_action` candidate has a fixed propensity of 1, so its priority is its value x weight: it is a
threshold. Actions ranked below it are not shown, and it is never returned itself (an empty list means
"do nothing" won).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nba.domain import BoolArray, FloatArray, IntArray

DRAW_BUDGET = 16384
MIN_DRAWS = 32


@dataclass(frozen=True)
class Ranking:
    actions: IntArray  # action indices, rank order, shown only
    draw: FloatArray  # the propensity sample each was ranked with
    score: FloatArray  # its priority
    probability: FloatArray  # estimated P(this action at this rank) under the policy
    contenders: IntArray  # the candidates that were sampled
    draws: int  # joint samples behind `probability`


def contenders(candidates: IntArray, lever: FloatArray, low: FloatArray, high: FloatArray,
               no_action: BoolArray, limit: int) -> IntArray:
    if candidates.shape[0] <= limit:
        return candidates
    fixed = no_action[candidates]
    upper = np.where(fixed, 1.0, high[candidates]) * lever[candidates]
    lower = np.where(fixed, 1.0, low[candidates]) * lever[candidates]
    kth = np.partition(lower, -limit)[-limit]
    keep: IntArray = candidates[upper >= kth]
    return keep


def arbitrate(candidates: IntArray, alpha: FloatArray, beta: FloatArray, low: FloatArray, high: FloatArray,
              lever: FloatArray, no_action: BoolArray, limit: int, rng: np.random.Generator,
              draws: int, *, explore: bool = True) -> Ranking:
    """`alpha`, `beta`, `low`, `high` are per action for the customer's segment key; `lever` is
    value x weight; `candidates` are the eligible action indices. `explore=False` ranks by the
    posterior means instead of samples (rule tests: the order the rules alone imply)."""
    c = contenders(candidates, lever, low, high, no_action, limit)
    m = c.shape[0]
    if m == 0 or limit <= 0:
        empty = np.zeros(0)
        return Ranking(np.zeros(0, np.int64), empty, empty, empty, c, draws)
    if explore:
        draws = max(MIN_DRAWS, min(draws, DRAW_BUDGET // m))
        theta = rng.beta(alpha[c], beta[c], size=(draws, m))
    else:
        draws = 1
        theta = (alpha[c] / (alpha[c] + beta[c]))[None, :]
    fixed = no_action[c]
    theta[:, fixed] = 1.0
    priority = theta * lever[c]
    k = min(limit, m)
    if m > 4 * k:
        top = np.argpartition(-priority, k - 1, axis=1)[:, :k]
        inner = np.argsort(-np.take_along_axis(priority, top, axis=1), axis=1, kind="stable")
        order = np.take_along_axis(top, inner, axis=1)
    else:
        order = np.argsort(-priority, axis=1, kind="stable")[:, :k]
    # positions at or after the first no_action are not shown
    shown = np.cumsum(fixed[order], axis=1) == 0
    n_shown = int(shown[0].sum())
    chosen = order[0, :n_shown]
    probability = ((order[:, :n_shown] == chosen) & shown[:, :n_shown]).mean(axis=0)
    return Ranking(
        actions=c[chosen], draw=theta[0, chosen], score=priority[0, chosen], probability=probability,
        contenders=c, draws=draws,
    )
