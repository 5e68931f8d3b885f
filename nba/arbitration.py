"""Arbitration: priority = propensity x value x weight, top-k, and the probability of each placement.

Thompson sampling has no closed form for "the chance this arm lands at rank r", so the policy draws
`draws` posterior samples at once: sample 0 *is* the decision and all samples together estimate each
shown action's probability at its rank (standard error <= 0.5/sqrt(draws); the chosen action's estimate
is never 0 because sample 0 counts). Arms whose (1 - TAIL) posterior quantile cannot beat the k-th best
TAIL quantile are not sampled: such an arm reaches the top-k with probability below (k + 1) x TAIL.

That bound prunes nothing while posteriors are wide: with 1,000 young actions hundreds stay in the
running, and sampling them all is what made a decision cost milliseconds. So at most
`max(SAMPLED_MAX, 4 x k)` contenders are sampled, those with the highest optimistic priority (their
1 - TAIL quantile x lever): optimism in the face of uncertainty picks which untried actions are tried
first, and as a tried action's upper quantile falls the next ones move in. The preselection is
deterministic given the model version, so the logged probabilities are exact for the policy that ran.
The number of joint samples then shrinks so that samples x contenders stays within DRAW_BUDGET, never
below MIN_DRAWS; the record of each decision keeps the number used, so offline evaluation knows its
precision. Decision cost is thereby bounded by SAMPLED_MAX, not by the size of the catalogue.

A `no_action` candidate has a fixed propensity of 1, so its priority is its value x weight: it is a
threshold. Actions ranked below it are not shown, and it is never returned itself (an empty list means
"do nothing" won); it is sampled whenever it can reach the top-k, whatever the cap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nba.domain import BoolArray, FloatArray, IntArray

DRAW_BUDGET = 1024
MIN_DRAWS = 32
SAMPLED_MAX = 16
TOP_BY_ARGMAX = 4  # up to this k, k argmax passes beat a sort of every sample's row


@dataclass(frozen=True)
class Beliefs:
    """What the model believes about the propensity of each candidate (arrays aligned with them).

    `kind` "beta": Beta(a, b) per candidate (per-segment Thompson sampling); "normal": N(a, b^2) (the
    contextual model's score distribution). `exploration` scales every draw's distance from the mean:
    1 is Thompson sampling as is, 0 always the mean, 0.3 a call-center agent's cautious 30%. `low` and
    `high` are the TAIL quantiles of the scaled draws (see contenders)."""

    kind: str
    a: FloatArray
    b: FloatArray
    mean: FloatArray
    low: FloatArray
    high: FloatArray
    exploration: float = 1.0

    @staticmethod
    def beta(alpha: FloatArray, beta: FloatArray, low: FloatArray, high: FloatArray,
             exploration: float = 1.0) -> Beliefs:
        mean = alpha / (alpha + beta)
        return Beliefs("beta", alpha, beta, mean, mean + exploration * (low - mean), mean + exploration * (high - mean),
                       exploration)

    @staticmethod
    def normal(mean: FloatArray, sd: FloatArray, exploration: float = 1.0) -> Beliefs:
        z = TAIL_Z * exploration * sd
        return Beliefs("normal", mean, sd, np.clip(mean, 0.0, 1.0), np.clip(mean - z, 0.0, 1.0),
                       np.clip(mean + z, 0.0, 1.0), exploration)

    def take(self, idx: IntArray) -> Beliefs:
        return Beliefs(self.kind, self.a[idx], self.b[idx], self.mean[idx], self.low[idx], self.high[idx],
                       self.exploration)

    def sample(self, rng: np.random.Generator, draws: int) -> FloatArray:
        """(draws, candidates) propensity draws."""
        m = self.a.shape[0]
        if self.kind == "beta":
            theta: FloatArray = rng.beta(self.a, self.b, size=(draws, m))
            if self.exploration == 1.0:
                return theta  # already in [0, 1]
            theta -= self.mean
            theta *= self.exploration
            theta += self.mean
        else:
            theta = rng.standard_normal((draws, m))
            theta *= self.exploration * self.b
            theta += self.a
        return np.minimum(np.maximum(theta, 0.0, out=theta), 1.0, out=theta)


# z of the 1 - TAIL normal quantile (bandit.TAIL = 1e-4): the contextual model's pruning bound
TAIL_Z = 3.719016485455709


@dataclass(frozen=True)
class Ranking:
    actions: IntArray  # action indices, rank order, shown only
    draw: FloatArray  # the propensity sample each was ranked with
    score: FloatArray  # its priority
    probability: FloatArray  # estimated P(this action at this rank) under the policy
    propensity: FloatArray  # the model's mean belief for each shown action
    contenders: IntArray  # the candidates that were sampled
    draws: int  # joint samples behind `probability`


def contenders(candidates: IntArray, lever: FloatArray, beliefs: Beliefs, no_action: BoolArray,
               limit: int) -> IntArray:
    """Positions (into `candidates`) of the ones that can reach the top-k."""
    if candidates.shape[0] <= limit:
        return np.arange(candidates.shape[0])
    fixed = no_action[candidates]
    upper = np.where(fixed, 1.0, beliefs.high) * lever[candidates]
    lower = np.where(fixed, 1.0, beliefs.low) * lever[candidates]
    kth = np.partition(lower, -limit)[-limit]
    keep: IntArray = np.flatnonzero(upper >= kth)
    cap = max(SAMPLED_MAX, 4 * limit)
    if keep.shape[0] > cap:
        chosen = np.zeros(candidates.shape[0], bool)
        chosen[keep[fixed[keep]]] = True  # do-nothing thresholds that can bind take part, on top of the cap
        open_ = keep[~fixed[keep]]
        if open_.shape[0] > cap:
            open_ = open_[np.argpartition(-upper[open_], cap - 1)[:cap]]
        chosen[open_] = True
        keep = np.flatnonzero(chosen)
    return keep


def arbitrate(candidates: IntArray, beliefs: Beliefs, lever: FloatArray, no_action: BoolArray, limit: int,
              rng: np.random.Generator, draws: int, *, explore: bool = True) -> Ranking:
    """`beliefs` are aligned with `candidates` (the eligible action indices); `lever` is value x weight
    per action. `explore=False` ranks by the posterior means instead of samples (rule tests, degraded
    answers: the order the rules alone imply)."""
    keep = contenders(candidates, lever, beliefs, no_action, limit)
    c = candidates[keep]
    m = c.shape[0]
    if m == 0 or limit <= 0:
        empty = np.zeros(0)
        return Ranking(np.zeros(0, np.int64), empty, empty, empty, empty, c, draws)
    own = beliefs.take(keep)
    if explore:
        draws = max(MIN_DRAWS, min(draws, DRAW_BUDGET // m))
        theta = own.sample(rng, draws)
    else:
        draws = 1
        theta = own.mean[None, :].copy()
    fixed = no_action[c]
    theta[:, fixed] = 1.0
    priority = theta * lever[c]
    order = top_k(priority, min(limit, m))
    # positions at or after the first no_action are not shown
    shown = np.cumsum(fixed[order], axis=1) == 0
    n_shown = int(shown[0].sum())
    chosen = order[0, :n_shown]
    probability = ((order[:, :n_shown] == chosen) & shown[:, :n_shown]).mean(axis=0)
    return Ranking(
        actions=c[chosen], draw=theta[0, chosen], score=priority[0, chosen], probability=probability,
        propensity=own.mean[chosen], contenders=c, draws=draws,
    )


def top_k(priority: FloatArray, k: int) -> IntArray:
    """Per row (sample), the columns of the k highest priorities, best first."""
    if k <= TOP_BY_ARGMAX:
        p = priority.copy()
        rows = np.arange(p.shape[0])
        order = np.empty((p.shape[0], k), np.int64)
        for r in range(k):  # per rank, not per action
            best = p.argmax(axis=1)
            order[:, r] = best
            p[rows, best] = -np.inf
        return order
    if priority.shape[1] > 4 * k:
        top = np.argpartition(-priority, k - 1, axis=1)[:, :k]
        inner = np.argsort(-np.take_along_axis(priority, top, axis=1), axis=1, kind="stable")
        out: IntArray = np.take_along_axis(top, inner, axis=1)
        return out
    out = np.argsort(-priority, axis=1, kind="stable")[:, :k]
    return out


def random_order(candidates: IntArray, beliefs: Beliefs, lever: FloatArray, no_action: BoolArray, limit: int,
                 rng: np.random.Generator) -> Ranking:
    """The control group's ordering: a uniformly random permutation of the eligible actions (the
    do-nothing threshold does not apply: control measures what showing *something* earns). Each
    action lands at each rank with probability exactly 1/m."""
    pool = np.flatnonzero(~no_action[candidates])
    m = pool.shape[0]
    k = min(limit, m)
    pick = pool[rng.permutation(m)[:k]] if k > 0 else np.zeros(0, np.int64)
    return Ranking(
        actions=candidates[pick], draw=beliefs.mean[pick], score=beliefs.mean[pick] * lever[candidates[pick]],
        probability=np.full(k, 1.0 / m if m else 0.0), propensity=beliefs.mean[pick], contenders=candidates[pool],
        draws=0,
    )
