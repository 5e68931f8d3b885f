"""Arbitration: priority = propensity x value x weight, the top k, and the probability of each placement.

A decision is Thompson sampling over every candidate that can be shown: each contender draws a propensity
from its belief (beliefs.py), its priority is that draw times its lever (value x weight), and the k
highest priorities above the do-nothing threshold are shown, best first. Every belief has a bounded
support (posteriors are truncated at their TAIL quantiles), so the preselection is exact: a candidate
whose highest possible priority does not beat the threshold, or is below the k-th highest lowest
possible priority, can never be shown and is not sampled; every other one is, however many there are.
So the first-place frequencies are those of Thompson sampling over the whole eligible set.

The probability logged for each shown action at its rank is integrated for the policy that ran
(placement.py), not estimated from samples: it is never biased towards the decision's own draw, and the
importance weights of offline evaluation average exactly 1.

A `no_action` candidate has a fixed propensity of 1, so its priority is its value x weight: a threshold.
Actions that rank below it are not shown, and it is never returned itself (an empty list means "do
nothing" won).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from nba.decision.beliefs import Beliefs
from nba.decision.placement import placements
from nba.domain import BoolArray, FloatArray, IntArray

# What Situations remember per process; a situation of m contenders takes about 1.2 KB x m.
SITUATIONS = 4096
SITUATION_BYTES = 64 << 20
BLOCK = 64  # draws a cached situation takes at once ...
BLOCK_DRAWS = 8192  # ... fewer when draws x contenders would exceed this
TOP_BY_ARGMAX = 4


@dataclass(frozen=True)
class Ranking:
    actions: IntArray  # action indices, rank order, shown only
    draw: FloatArray  # the propensity each was ranked with
    score: FloatArray  # its priority
    probability: FloatArray  # P(this action at this rank) under the policy that ran
    propensity: FloatArray  # the model's point estimate for each shown action
    contenders: IntArray  # the candidates that could be shown (and were sampled)


class Sampling(NamedTuple):
    """How a decision samples: draws from `rng`; `explore=False` ranks by the point estimates instead
    (rule tests, degraded answers: the order the rules alone imply)."""

    rng: np.random.Generator
    explore: bool = True


def do_nothing(lever: FloatArray, fixed: BoolArray) -> float | None:
    """The priority of doing nothing among candidates (their levers, which are no_action ones): the
    highest no_action lever, None without one."""
    return float(lever[fixed].max()) if fixed.any() else None


def contenders(beliefs: Beliefs, lever: FloatArray, fixed: BoolArray, threshold: float, limit: int) -> IntArray:
    """Positions of the candidates that can be shown: not a threshold, able to beat the threshold, and able
    to reach the top `limit` (beliefs and lever aligned with the candidates)."""
    upper = beliefs.high * lever
    keep = np.flatnonzero(~fixed & (upper > threshold))
    if keep.shape[0] > limit > 0:
        lower = beliefs.low[keep] * lever[keep]
        kth = np.partition(lower, -limit)[-limit]
        keep = keep[upper[keep] >= kth]
    return keep


class Situation:
    """One arbitration situation: the contenders (positions into the candidates), their beliefs and levers,
    the threshold and the limit; the placement probabilities integrated so far (NaN: not yet); and a block
    of draws, each the sample of one decision (drawing `block` at once shares numpy's per-call cost; every
    draw is independent and used once, so each decision is still one Thompson sample)."""

    __slots__ = (
        "beliefs",
        "block",
        "contenders",
        "keep",
        "lever",
        "limit",
        "model",
        "nbytes",
        "order",
        "priority",
        "probability",
        "theta",
        "threshold",
        "used",
    )

    def __init__(
        self,
        candidates: IntArray,
        beliefs: Beliefs,
        lever: FloatArray,
        no_action: BoolArray,
        limit: int,
        block: int = 1,
    ) -> None:
        fixed = no_action[candidates]
        lev = lever[candidates]
        bar = do_nothing(lev, fixed)
        self.threshold = -np.inf if bar is None else bar
        self.keep = contenders(beliefs, lev, fixed, self.threshold, limit)
        self.contenders = candidates[self.keep]
        m = self.contenders.shape[0]
        self.beliefs = beliefs.take(self.keep)
        self.lever = lev[self.keep]
        self.limit = max(0, min(limit, m))
        self.probability = np.full((self.limit, m), np.nan)
        self.model: object = None  # what the beliefs were read from, when cached (Situations)
        self.block = max(1, min(block, BLOCK_DRAWS // max(m, 1)))
        self.theta = self.priority = np.zeros((0, m))
        self.order = np.zeros((0, self.limit), np.int64)
        self.used = 0
        self.nbytes = 8 * (self.beliefs.grid.size + 12 * m + self.probability.size + self.block * (2 * m + self.limit))

    def decide(self, rng: np.random.Generator) -> Ranking:
        c = self.contenders
        if self.limit == 0:
            empty = np.zeros(0)
            return Ranking(np.zeros(0, np.int64), empty, empty, empty, empty, c)
        if self.used == self.order.shape[0]:
            self.theta = self.beliefs.sample(rng, self.block)
            self.priority = self.theta * self.lever
            self.order = top_k_rows(self.priority, self.limit)
            self.used = 0
        row = self.used
        self.used += 1
        best = self.order[row]
        theta, priority = self.theta[row], self.priority[row]
        chosen = best[priority[best] > self.threshold]
        ranks = np.arange(chosen.shape[0])
        probability = self.probability[ranks, chosen]
        missing = np.isnan(probability)
        if missing.any():
            # every rank of these contenders at once: they will be shown at the other ranks too
            rows = chosen[missing]
            self.probability[:, rows] = placements(self.beliefs, self.lever, self.threshold, rows, self.limit).T
            probability = self.probability[ranks, chosen]
        return Ranking(c[chosen], theta[chosen], priority[chosen], probability, self.beliefs.mean[chosen], c)


class Situations:
    """Situations seen recently, least recently used forgotten first (per process, bounded in number and
    bytes). The per-segment model's situations repeat: customers share segment keys and eligible sets, and
    the model changes at most once per `learning.refresh_seconds`; a placement probability depends on
    nothing else, so each is integrated once per situation. The contextual model's beliefs depend on each
    customer's features: its situations are not kept."""

    def __init__(self, size: int = SITUATIONS, max_bytes: int = SITUATION_BYTES) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._seen: OrderedDict[Hashable, Situation] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def get(self, key: Hashable, model: object) -> Situation | None:
        """The situation under `key` if it was built from this very `model` object."""
        s = self._seen.get(key)
        if s is None or s.model is not model:
            return None
        self._seen.move_to_end(key)
        return s

    def put(self, key: Hashable, model: object, s: Situation) -> None:
        s.model = model
        old = self._seen.pop(key, None)
        if old is not None:
            self.nbytes -= old.nbytes
        while self._seen and (len(self._seen) >= self.size or self.nbytes + s.nbytes > self.max_bytes):
            _, gone = self._seen.popitem(last=False)
            self.nbytes -= gone.nbytes
        self._seen[key] = s
        self.nbytes += s.nbytes


def arbitrate(
    candidates: IntArray, beliefs: Beliefs, lever: FloatArray, no_action: BoolArray, limit: int, sampling: Sampling
) -> Ranking:
    """`beliefs` are aligned with `candidates` (the eligible action indices); `lever` is value x weight
    per action; `no_action` marks the do-nothing thresholds."""
    if not sampling.explore:
        beliefs = beliefs.at_mean()
    return Situation(candidates, beliefs, lever, no_action, limit).decide(sampling.rng)


def top_k_rows(priority: FloatArray, k: int) -> IntArray:
    """Per row (one draw of every contender), the positions of the k highest priorities, best first; of
    equal ones, the earlier first."""
    if k <= TOP_BY_ARGMAX:  # k argmax passes beat a sort of every row
        p = priority.copy()
        rows = np.arange(p.shape[0])
        order = np.empty((p.shape[0], k), np.int64)
        for r in range(k):  # per rank, not per action
            best = p.argmax(axis=1)  # the first of equal maxima
            order[:, r] = best
            p[rows, best] = -np.inf
        return order
    out: IntArray = np.argsort(-priority, axis=1, kind="stable")[:, :k]
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
    )
