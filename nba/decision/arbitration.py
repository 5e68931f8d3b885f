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

Most decisions repeat a situation: customers share segment keys and eligible sets, and the model moves
at most once per `learning.refresh_seconds`. A `Tally` keeps, per situation (the contenders and
exactly the parameters their placement distribution depends on), how often each landed at each rank
over every sample drawn so far, and the block of samples last drawn. Each decision takes
the next unused sample of the block as its sample 0 and reads its probability from the counts; when
the block is used up, a fresh one is drawn and counted. Every sample is an independent draw from the
situation's distribution and is used by at most one decision, so this is Thompson sampling as before,
and the logged probability is the same Monte Carlo frequency (its own sample 0 included), whose
precision grows with traffic instead of being fixed per decision; a block's sampling cost is shared
by up to a block's decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.special import ndtri

from nba.domain import BoolArray, FloatArray, IntArray
from nba.learning.bandit import TAIL

DRAW_BUDGET = 1024
MIN_DRAWS = 32
SAMPLED_MAX = 16
TOP_BY_ARGMAX = 4  # up to this k, k argmax passes beat a sort of every sample's row
# What a Tally remembers (per process); past either bound the least recently used situation goes first.
# A situation (its key and its block of samples) takes about 20 KB with 16 contenders.
TALLY_SITUATIONS = 4096
TALLY_BYTES = 32 << 20


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
    def beta(
        alpha: FloatArray, beta: FloatArray, low: FloatArray, high: FloatArray, exploration: float = 1.0
    ) -> Beliefs:
        mean = alpha / (alpha + beta)
        if exploration == 1.0:
            return Beliefs("beta", alpha, beta, mean, low, high, exploration)
        return Beliefs(
            "beta",
            alpha,
            beta,
            mean,
            mean + exploration * (low - mean),
            mean + exploration * (high - mean),
            exploration,
        )

    @staticmethod
    def normal(mean: FloatArray, sd: FloatArray, exploration: float = 1.0) -> Beliefs:
        z = TAIL_Z * exploration * sd
        return Beliefs(
            "normal",
            mean,
            sd,
            np.clip(mean, 0.0, 1.0),
            np.clip(mean - z, 0.0, 1.0),
            np.clip(mean + z, 0.0, 1.0),
            exploration,
        )

    def take(self, idx: IntArray) -> Beliefs:
        return Beliefs(
            self.kind, self.a[idx], self.b[idx], self.mean[idx], self.low[idx], self.high[idx], self.exploration
        )

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


# z of the 1 - TAIL normal quantile: the contextual model's pruning bound, as the Beta quantiles are the
# thompson model's
TAIL_Z = float(ndtri(1.0 - TAIL))


@dataclass(frozen=True)
class Ranking:
    actions: IntArray  # action indices, rank order, shown only
    draw: FloatArray  # the propensity sample each was ranked with
    score: FloatArray  # its priority
    probability: FloatArray  # estimated P(this action at this rank) under the policy
    propensity: FloatArray  # the model's mean belief for each shown action
    contenders: IntArray  # the candidates that were sampled
    draws: int  # samples behind `probability` (with a Tally: all of the situation's so far)


def contenders(candidates: IntArray, lever: FloatArray, beliefs: Beliefs, no_action: BoolArray, limit: int) -> IntArray:
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


class Placements:
    """One situation: its contenders' beliefs, levers and thresholds, counts[r, j] = samples so far in
    which contender j was shown at rank r, and the block of samples last drawn, each the sample 0 of one
    decision."""

    __slots__ = ("counts", "fixed", "lever", "n_shown", "order", "own", "priority", "samples", "theta", "used")

    def __init__(self, own: Beliefs, lever: FloatArray, fixed: BoolArray, k: int) -> None:
        m = own.a.shape[0]
        self.own, self.lever, self.fixed = own, lever, fixed
        self.counts = np.zeros((k, m), np.int64)
        self.samples = 0
        self.theta = self.priority = np.zeros((0, m))
        self.order = np.zeros((0, k), np.int64)
        self.n_shown = np.zeros(0, np.int64)
        self.used = 0

    def next_sample(self, rng: np.random.Generator, block: int) -> int:
        """The row of the next unused sample. A used-up block is replaced by `block` fresh samples, all
        counted at once: they are draws from this situation's distribution whether used yet or not."""
        if self.used == self.order.shape[0]:
            k, m = self.counts.shape
            theta = self.own.sample(rng, block)
            priority, order, shown = _place(theta, self.lever, self.fixed, k)
            self.counts += np.bincount((np.arange(k) * m + order)[shown], minlength=k * m).reshape(k, m)
            self.samples += block
            self.theta, self.priority, self.order = theta, priority, order
            self.n_shown = shown.sum(axis=1)
            self.used = 0
        self.used += 1
        return self.used - 1

    def nbytes(self, block: int) -> int:
        """Memory once a block of `block` samples is drawn (two float and one int array of it)."""
        k, m = self.counts.shape
        return 8 * (block * (2 * m + k) + k * m + 6 * m)


class Tally:
    """Placements per arbitration situation, shared by the decisions of one process (see the module
    docstring). A situation is keyed by the contenders' belief parameters, levers and thresholds, the
    exploration and k: everything the distribution of placements depends on. So a new model or rule set
    simply makes new situations; old ones are forgotten least recently used first."""

    def __init__(self, situations: int = TALLY_SITUATIONS, max_bytes: int = TALLY_BYTES) -> None:
        self.situations = situations
        self.max_bytes = max_bytes
        self.nbytes = 0  # keys and placements, approximately
        self._seen: dict[tuple[bytes, ...], tuple[Placements, int]] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def get(self, key: tuple[bytes, ...]) -> Placements | None:
        entry = self._seen.pop(key, None)
        if entry is None:
            return None
        self._seen[key] = entry  # now the most recently used
        return entry[0]

    def add(self, key: tuple[bytes, ...], seen: Placements, block: int) -> None:
        size = sum(len(part) for part in key) + seen.nbytes(block)
        while self._seen and (len(self._seen) >= self.situations or self.nbytes + size > self.max_bytes):
            _, forgotten = self._seen.pop(next(iter(self._seen)))
            self.nbytes -= forgotten
        self._seen[key] = (seen, size)
        self.nbytes += size


def _place(theta: FloatArray, lever: FloatArray, fixed: BoolArray, k: int) -> tuple[FloatArray, IntArray, BoolArray]:
    """Per sample row: priorities, the top-k columns best first, and which of them are shown (those
    before the first do-nothing threshold)."""
    theta[:, fixed] = 1.0
    priority = theta * lever
    order = top_k(priority, k)
    return priority, order, np.cumsum(fixed[order], axis=1) == 0


class Sampling(NamedTuple):
    """How a decision samples: `draws` joint samples from `rng` (fewer with many contenders: DRAW_BUDGET);
    `explore=False` ranks by the posterior means instead (rule tests, degraded answers: the order the rules
    alone imply); with a `tally`, a situation seen before mostly costs no sampling at all (module
    docstring)."""

    rng: np.random.Generator
    draws: int
    explore: bool = True
    tally: Tally | None = None


def arbitrate(
    candidates: IntArray, beliefs: Beliefs, lever: FloatArray, no_action: BoolArray, limit: int, sampling: Sampling
) -> Ranking:
    """`beliefs` are aligned with `candidates` (the eligible action indices); `lever` is value x weight
    per action; `no_action` marks the do-nothing thresholds."""
    rng, draws, explore, tally = sampling.rng, sampling.draws, sampling.explore, sampling.tally
    keep = contenders(candidates, lever, beliefs, no_action, limit)
    c = candidates[keep]
    m = c.shape[0]
    if m == 0 or limit <= 0:
        empty = np.zeros(0)
        return Ranking(np.zeros(0, np.int64), empty, empty, empty, empty, c, draws)
    own = beliefs.take(keep)
    lever_c, fixed = lever[c], no_action[c]
    k = min(limit, m)
    # (the contextual model's beliefs depend on each customer's features: its situations hardly repeat)
    if explore and tally is not None and own.kind == "beta":
        return _counted(c, own, lever_c, fixed, k, _block(draws, m), sampling)
    if explore:
        draws = _block(draws, m)
        theta = own.sample(rng, draws)
    else:
        draws = 1
        theta = own.mean[None, :].copy()
    priority, order, shown = _place(theta, lever_c, fixed, k)
    n_shown = int(shown[0].sum())
    chosen = order[0, :n_shown]
    probability = ((order[:, :n_shown] == chosen) & shown[:, :n_shown]).mean(axis=0)
    return Ranking(
        actions=c[chosen],
        draw=theta[0, chosen],
        score=priority[0, chosen],
        probability=probability,
        propensity=own.mean[chosen],
        contenders=c,
        draws=draws,
    )


def _block(draws: int, m: int) -> int:
    return max(MIN_DRAWS, min(draws, DRAW_BUDGET // m))


def _counted(
    c: IntArray, own: Beliefs, lever: FloatArray, fixed: BoolArray, k: int, block: int, sampling: Sampling
) -> Ranking:
    """`arbitrate` for the contenders `c` through the tally. Keyed after the preselection: with a large
    catalogue customers' eligible sets differ more often than the few contenders picked from them, and
    the key stays small."""
    tally = sampling.tally
    assert tally is not None  # arbitrate counts only with one
    key = (np.array([own.exploration, k]).tobytes(), own.a.tobytes(), own.b.tobytes(), lever.tobytes(), fixed.tobytes())
    seen = tally.get(key)
    if seen is None:
        seen = Placements(own, lever, fixed, k)
        tally.add(key, seen, block)
    row = seen.next_sample(sampling.rng, block)
    chosen = seen.order[row, : seen.n_shown[row]]
    return Ranking(
        actions=c[chosen],
        draw=seen.theta[row, chosen],
        score=seen.priority[row, chosen],
        probability=seen.counts[np.arange(chosen.shape[0]), chosen] / seen.samples,
        propensity=seen.own.mean[chosen],
        contenders=c,
        draws=seen.samples,
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


def random_order(
    candidates: IntArray,
    beliefs: Beliefs,
    lever: FloatArray,
    no_action: BoolArray,
    limit: int,
    rng: np.random.Generator,
) -> Ranking:
    """The control group's ordering: a uniformly random permutation of the eligible actions (the
    do-nothing threshold does not apply: control measures what showing *something* earns). Each
    action lands at each rank with probability exactly 1/m."""
    pool = np.flatnonzero(~no_action[candidates])
    m = pool.shape[0]
    k = min(limit, m)
    pick = pool[rng.permutation(m)[:k]] if k > 0 else np.zeros(0, np.int64)
    return Ranking(
        actions=candidates[pick],
        draw=beliefs.mean[pick],
        score=beliefs.mean[pick] * lever[candidates[pick]],
        probability=np.full(k, 1.0 / m if m else 0.0),
        propensity=beliefs.mean[pick],
        contenders=candidates[pool],
        draws=0,
    )
