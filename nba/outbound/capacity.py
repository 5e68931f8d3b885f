"""Choosing actions for a population within capacities: pure numpy over (customer, action) pairs.

The problem of an outbound run: every customer may get at most `per_customer` of their candidate actions;
each candidate pair has a score (its priority above the do-nothing bar, as decide ranks it); a selection
of action a uses `weight[k][a]` of capacity k (the channel's capacity per day: weight 1 for every action;
an action's volume: 1 for that action; a budget: the action's cost). Maximise the total score.

It is solved through its Lagrangian: one price per capacity. At prices lambda every customer independently
takes their best pairs by score - sum_k lambda_k * weight_k[a], when that is positive; a price is the
smallest that keeps its capacity's use within bounds. Prices are found one capacity at a time, the
others held (coordinate ascent on the dual), for a few passes until none moves:

- a capacity whose weights are 0 or 1 (a channel, an action's volume, a group's) has an exact price when
  each customer takes one action: customer i uses it iff their best adjusted score inside it minus their
  best outside it (or 0) exceeds the price, so the price is the (capacity+1)-th largest of those margins;
- any other (a budget; several actions per customer) is bisected on its use, which falls as it rises.

The selection at the final prices can still exceed a capacity through ties, and leaves slack where the
prices overshoot: `select` then drops the lowest adjusted pairs of what is over, and fills what is left,
best adjusted first, so no capacity is ever exceeded. The dual value at the prices bounds the best
possible total from above: `Selection.bound` says how close the run came.

Why prices rather than a solver: they explain a choice in one number ("e-mail capacity price 0.80 was
above its score 0.52"), and the same number can be applied to real-time decisions of the channel, so
inbound contacts spend capacity only on what beats the outbound list's last choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from nba.domain import BoolArray, FloatArray, IntArray

PASSES = 30  # coordinate passes over the prices, at most (they stop when no price moves)
BISECTIONS = 50  # halvings of a bisected price's interval
_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Pairs:
    """The candidate pairs, grouped by customer (customer indices non-decreasing, 0..customers-1)."""

    customer: IntArray
    action: IntArray
    score: FloatArray  # > 0: worth more than doing nothing
    customers: int
    actions: int

    def __post_init__(self) -> None:
        n = self.customer.shape[0]
        if not (self.action.shape[0] == self.score.shape[0] == n):
            raise ValueError("customer, action and score must have one entry per pair")
        if n and (np.any(np.diff(self.customer) < 0) or self.customer[-1] >= self.customers or self.customer[0] < 0):
            raise ValueError("pairs must be grouped by customer, in order")

    @staticmethod
    def build(customer: IntArray, action: IntArray, score: FloatArray, customers: int, actions: int) -> Pairs:
        """Pairs from unordered arrays: sorted by customer, pairs that are worth nothing dropped."""
        keep = score > 0
        c, a, s = customer[keep], action[keep], score[keep]
        order = np.argsort(c, kind="stable")
        return Pairs(c[order], a[order], s[order].astype(np.float64), customers, actions)


@dataclass(frozen=True)
class Capacity:
    """One limit: selections of action a use weight[a] of it, and at most `limit` may be used."""

    name: str
    weight: FloatArray  # per action, >= 0
    limit: float

    @property
    def counting(self) -> bool:
        """Weights of 0 or 1 only: it counts selections of a set of actions (an exact price exists)."""
        return bool(np.all((self.weight == 0) | (self.weight == 1)))


@dataclass(frozen=True)
class Selection:
    chosen: IntArray  # indices into the pairs, grouped by customer
    prices: FloatArray  # per capacity
    used: FloatArray  # per capacity
    total: float  # the sum of the chosen scores
    bound: float  # no selection within the capacities can total more (the dual value at the prices)
    passes: int


def price_of_actions(capacities: Sequence[Capacity], prices: FloatArray, actions: int) -> FloatArray:
    """What one selection of each action costs at these prices."""
    out = np.zeros(actions)
    for cap, p in zip(capacities, prices, strict=True):
        if p:
            out += p * cap.weight
    return out


def top(pairs: Pairs, adjusted: FloatArray, per_customer: int) -> IntArray:
    """Each customer's best `per_customer` pairs by `adjusted`, those above 0 only (pair indices, grouped
    by customer)."""
    n = pairs.customer.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    if per_customer == 1:
        starts = _starts(pairs.customer)
        best = np.maximum.reduceat(adjusted, starts)
        counts = np.diff(np.append(starts, n))
        hit = np.flatnonzero((adjusted == np.repeat(best, counts)) & (adjusted > 0))
        if hit.shape[0] == 0:
            return hit
        first = np.ones(hit.shape[0], bool)  # ties: the first pair of the customer
        first[1:] = pairs.customer[hit[1:]] != pairs.customer[hit[:-1]]
        return hit[first]
    order = np.lexsort((-adjusted, pairs.customer))
    c = pairs.customer[order]
    starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
    place = np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n)))
    keep = order[(place < per_customer) & (adjusted[order] > 0)]
    return np.sort(keep)


def use(pairs: Pairs, chosen: IntArray, capacities: Sequence[Capacity]) -> FloatArray:
    counts = np.bincount(pairs.action[chosen], minlength=pairs.actions).astype(np.float64)
    return np.array([float(counts @ cap.weight) for cap in capacities])


def unconstrained(pairs: Pairs, per_customer: int) -> IntArray:
    """The capacity-free optimum: every customer's best pairs."""
    return top(pairs, pairs.score, per_customer)


def first_come(
    pairs: Pairs, capacities: Sequence[Capacity], per_customer: int, order: IntArray | None = None
) -> IntArray:
    """The greedy baseline: customers one after another (in `order`, default as they come), each taking
    their best pairs that still fit every capacity, until nothing fits."""
    n = pairs.customer.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    left = np.array([c.limit for c in capacities], np.float64)
    weights = _weights(capacities, pairs.actions)
    ranked = np.lexsort((-pairs.score, pairs.customer))  # by customer, best first
    starts = _starts(pairs.customer[ranked])
    ends = np.append(starts[1:], n)
    customers = pairs.customer[ranked][starts].tolist()
    where = dict(zip(customers, zip(starts.tolist(), ends.tolist(), strict=True), strict=True))
    sequence = customers if order is None else [c for c in order.tolist() if c in where]
    chosen: list[int] = []
    fits = _fitting(weights, left)
    for c in sequence:
        s, e = where[c]
        taken = 0
        for p in ranked[s:e].tolist():
            a = int(pairs.action[p])
            if fits[a]:
                left -= weights[:, a]
                fits = _fitting(weights, left)
                chosen.append(p)
                taken += 1
                if taken == per_customer:
                    break
        if not fits.any():
            break  # nothing fits any more
    return np.sort(np.array(chosen, np.int64))


def _weights(capacities: Sequence[Capacity], actions: int) -> FloatArray:
    return np.array([c.weight for c in capacities], np.float64).reshape(len(capacities), actions)


def _fitting(weights: FloatArray, left: FloatArray) -> BoolArray:
    """Per action: does one more selection of it fit every capacity?"""
    out: BoolArray = np.all(weights <= left[:, None] + _TOLERANCE, axis=0)
    return out


def select(pairs: Pairs, capacities: Sequence[Capacity], per_customer: int) -> Selection:
    """The selection within `capacities` at their Lagrangian prices (module docstring)."""
    k = len(capacities)
    prices = np.zeros(k)
    limits = np.array([c.limit for c in capacities], np.float64)
    passes = 0
    while k and pairs.customer.shape[0] and passes < PASSES:
        passes += 1
        before = prices.copy()
        cost = price_of_actions(capacities, prices, pairs.actions)
        over = use(pairs, top(pairs, pairs.score - cost[pairs.action], per_customer), capacities) > limits + _TOLERANCE
        # only a capacity that is exceeded or priced can move: the others hold at 0 until one is exceeded
        for i in np.flatnonzero(over | (prices > 0)).tolist():
            cap = capacities[i]
            prices[i] = 0.0
            rest = pairs.score - price_of_actions(capacities, prices, pairs.actions)[pairs.action]
            if cap.counting and per_customer == 1:
                prices[i] = _exact_price(pairs, rest, cap)
            else:
                prices[i] = _bisected_price(pairs, rest, cap, per_customer)
        if np.allclose(prices, before, rtol=1e-9, atol=1e-12):
            break
    adjusted = pairs.score - price_of_actions(capacities, prices, pairs.actions)[pairs.action]
    best = top(pairs, adjusted, per_customer)
    chosen = _within(pairs, adjusted, best, capacities, limits, per_customer)
    bound = float(adjusted[best].sum() + prices @ limits)
    return Selection(chosen, prices, use(pairs, chosen, capacities), float(pairs.score[chosen].sum()), bound, passes)


class Solved(NamedTuple):
    selection: Selection  # at the prices
    first_come: IntArray
    chosen: IntArray  # the better of the two
    method: str  # prices | first_come


def solve(pairs: Pairs, capacities: Sequence[Capacity], per_customer: int) -> Solved:
    """The selection at the prices, or first-come's when that totals more: with a budget whose costs vary,
    rounding a Lagrangian solution can lose to the greedy order on small populations (in about 2% of
    small random problems), and a run must never do worse than the baseline it reports."""
    sel = select(pairs, capacities, per_customer)
    greedy = first_come(pairs, capacities, per_customer)
    if pairs.score[greedy].sum() > sel.total:
        return Solved(sel, greedy, greedy, "first_come")
    return Solved(sel, greedy, sel.chosen, "prices")


def _exact_price(pairs: Pairs, adjusted: FloatArray, cap: Capacity) -> float:
    """The price of a counting capacity, one action per customer, the other prices held."""
    inside = cap.weight[pairs.action] > 0
    n = pairs.customer.shape[0]
    starts = _starts(pairs.customer)
    best_in = np.maximum.reduceat(np.where(inside, adjusted, -np.inf), starts)
    best_out = np.maximum.reduceat(np.where(inside, -np.inf, adjusted), starts)
    margin = best_in - np.maximum(best_out, 0.0)
    margin = margin[margin > 0]
    limit = int(np.floor(cap.limit + _TOLERANCE))
    if margin.shape[0] <= limit or n == 0:
        return 0.0
    # exactly `limit` margins are above the (limit+1)-th largest (fewer on ties: never more)
    return float(np.partition(margin, margin.shape[0] - limit - 1)[margin.shape[0] - limit - 1])


def _bisected_price(pairs: Pairs, adjusted: FloatArray, cap: Capacity, per_customer: int) -> float:
    """The smallest price at which the capacity's use fits, the other prices held (use falls as it rises)."""

    def used(price: float) -> float:
        chosen = top(pairs, adjusted - price * cap.weight[pairs.action], per_customer)
        return float(cap.weight[pairs.action[chosen]].sum())

    if used(0.0) <= cap.limit + _TOLERANCE:
        return 0.0
    w = cap.weight[pairs.action]
    positive = w > 0
    lo, hi = 0.0, float((adjusted[positive] / w[positive]).max())  # above it nothing of it is worth taking
    for _ in range(BISECTIONS):
        mid = (lo + hi) / 2
        if used(mid) > cap.limit + _TOLERANCE:
            lo = mid
        else:
            hi = mid
    return hi


def _within(
    pairs: Pairs,
    adjusted: FloatArray,
    chosen: IntArray,
    capacities: Sequence[Capacity],
    limits: FloatArray,
    per_customer: int,
) -> IntArray:
    """`chosen` made to fit: the lowest adjusted pairs of an exceeded capacity dropped, then the slack filled
    with the best adjusted pairs that still fit (a customer's next best included)."""
    weights = _weights(capacities, pairs.actions)
    kept = chosen
    for i in range(len(capacities)):
        w = weights[i, pairs.action[kept]]
        if w.sum() <= limits[i] + _TOLERANCE:
            continue
        order = np.argsort(-adjusted[kept], kind="stable")
        fits = np.cumsum(w[order] * (w[order] > 0)) <= limits[i] + _TOLERANCE
        kept = np.sort(kept[order[fits | (w[order] == 0)]])
    keep = np.zeros(pairs.customer.shape[0], bool)
    keep[kept] = True
    left = limits - weights[:, pairs.action[kept]].sum(axis=1)
    taken = np.bincount(pairs.customer[kept], minlength=pairs.customers)
    # fill: every other pair worth taking at all, best first, while it fits; the candidates are filtered
    # again between short chunks, so a full capacity ends the loop instead of a walk over every pair
    rest = np.flatnonzero(~keep & (taken[pairs.customer] < per_customer))
    rest = rest[np.argsort(-adjusted[rest], kind="stable")]
    while rest.shape[0]:
        rest = rest[_fitting(weights, left)[pairs.action[rest]] & (taken[pairs.customer[rest]] < per_customer)]
        chunk, rest = rest[:256], rest[256:]
        for p in chunk.tolist():
            c, a = pairs.customer[p], pairs.action[p]
            w = weights[:, a]
            if taken[c] < per_customer and np.all(w <= left + _TOLERANCE):
                keep[p] = True
                taken[c] += 1
                left -= w
    return np.flatnonzero(keep)


def _starts(customer: IntArray) -> IntArray:
    return np.flatnonzero(np.r_[True, customer[1:] != customer[:-1]])


def blocking(pairs: Pairs, selection: Selection, capacities: Sequence[Capacity]) -> BoolArray:
    """Per pair: was it worth taking (score > 0) and left out while a capacity's price was above its
    score? (`why_not` names which.)"""
    chosen = np.zeros(pairs.customer.shape[0], bool)
    chosen[selection.chosen] = True
    cost = price_of_actions(capacities, selection.prices, pairs.actions)[pairs.action]
    out: BoolArray = ~chosen & (cost > 0)
    return out


def why_not(pair: int, pairs: Pairs, selection: Selection, capacities: Sequence[Capacity]) -> str:
    """In a sentence, why a pair was not chosen."""
    a = int(pairs.action[pair])
    score = float(pairs.score[pair])
    charged = [
        (float(p * c.weight[a]), c.name)
        for c, p in zip(capacities, selection.prices, strict=True)
        if p * c.weight[a] > 0
    ]
    if not charged:
        return f"not chosen: the customer's other actions scored higher than {score:.3g}"
    cost = sum(x for x, _ in charged)
    names = " + ".join(f"{name} price {x:.3g}" for x, name in sorted(charged, reverse=True))
    if cost >= score * (1 - 1e-9):
        verb = "exceeded" if cost > score * (1 + 1e-9) else "was at or above"
        return f"not chosen: {names} {verb} its score {score:.3g}"
    return f"not chosen: after {names}, the customer's other actions scored higher than its {score - cost:.3g}"
