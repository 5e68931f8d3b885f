"""The probability that the policy that ran shows a candidate at a rank, by numerical integration rather
than by counting samples (pure numpy).

Thompson sampling draws each contender's propensity from its belief (beliefs.py), multiplies it by the
lever (value x weight) and shows the top k whose priority beats the do-nothing threshold. So

    P(a shown at rank r) = integral, over a's draws t with t x lever_a > threshold, of
                           P(exactly r - 1 other contenders' priorities exceed t x lever_a) dF_a(t).

The count of others above is Poisson-binomial: with F_b the chance that b stays below and
rho_b = (1 - F_b) / F_b, P(exactly j above) = prod_b F_b x e_j(rho), where e_j, the elementary symmetric
polynomials of the rho_b, are built from cumulative sums of positive terms only (nothing cancels). F_b
is taken as at least FLOOR, so no rho exceeds 1 / FLOOR and the sums stay finite; an arm above with a
chance beyond 1 - FLOOR changes a probability by at most FLOOR.

The integral is the midpoint rule in probability over a's strata: a table belief's own GRID intervals
(its density is uniform in each) or STRATA equal-probability strata of a normal one, the stratum that
contains the threshold cut at it. Against scipy's adaptive quadrature the result is within 2e-3 in the
cases of tests/unit/test_placement.py. The cost is O(shown x strata x contenders) per decision.

Ties, which only point masses can produce: the earlier candidate ranks first, and a priority equal to
the threshold is not shown (doing nothing wins a tie).
"""

from __future__ import annotations

import numpy as np

from nba.decision.beliefs import STRATA, Beliefs
from nba.domain import FloatArray, IntArray

FLOOR = 1e-12
CHUNK = 1 << 21  # the most nodes x contenders worked on at once


def placements(beliefs: Beliefs, lever: FloatArray, threshold: float, rows: IntArray, k: int) -> FloatArray:
    """(len(rows), k): P(candidate rows[i] is shown at rank r + 1) for every rank up to k. One integration
    per row gives every rank (the counts of others above share one product), so a caller that will want
    other ranks of the same rows later should ask for them now."""
    n = rows.shape[0]
    if n == 0 or k == 0:
        return np.zeros((n, k))
    fixed = beliefs.point | (lever <= 0)
    if fixed.all():  # nothing is drawn: the ranking is certain
        value = np.where(lever > 0, beliefs.low * lever, 0.0)
        order = np.argsort(-value, kind="stable")
        at = np.empty_like(order)
        at[order] = np.arange(order.shape[0])
        certain: FloatArray = (
            (at[rows][:, None] == np.arange(k)[None, :]) & (value[rows] > threshold)[:, None]
        ).astype(float)
        return certain
    per = max(1, CHUNK // (STRATA * lever.shape[0]))
    if n > per:  # many at once (offline evaluation): in pieces, so memory stays bounded
        return np.concatenate([placements(beliefs, lever, threshold, rows[i : i + per], k) for i in range(0, n, per)])
    weight, u = _nodes(beliefs, lever, threshold, rows)
    live = weight > 0
    if not live.any():
        return np.zeros((n, k))
    # contenders that cannot reach the lowest node stay below everywhere: they are left out of the product
    reach = np.flatnonzero(beliefs.high * lever >= u[live].min())
    if reach.shape[0] < 0.75 * lever.shape[0]:
        cols = np.union1d(reach, rows)
        beliefs, lever, rows = beliefs.take(cols), lever[cols], np.searchsorted(cols, rows)
    f = _below(beliefs, lever, rows, u)
    out: FloatArray = (weight[None, :, :] * _exactly(f, k - 1)).sum(axis=-1).T
    return out


def _nodes(beliefs: Beliefs, lever: FloatArray, threshold: float, rows: IntArray) -> tuple[FloatArray, FloatArray]:
    """Quadrature weights and the priorities at the nodes, (len(rows), S) each."""
    lev = lever[rows]
    positive = lev > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        cut = threshold / np.where(positive, lev, 1.0)
    weight, theta = beliefs.nodes(rows, cut)
    u = theta * lev[:, None]
    point = beliefs.point[rows] | ~positive
    if point.any():  # one node carrying all the mass, when that value beats the threshold
        value = np.where(positive, beliefs.low[rows] * lev, 0.0)
        weight[point] = 0.0
        weight[point, 0] = (value[point] > threshold).astype(float)
        u[point] = value[point, None]
    return weight, u


def _below(beliefs: Beliefs, lever: FloatArray, rows: IntArray, u: FloatArray) -> FloatArray:
    """(n, S, m): the chance that contender b's priority stays below u[i, s]; 1 for b = rows[i] itself."""
    n, m = rows.shape[0], lever.shape[0]
    f = beliefs.below(u, lever)
    f[np.arange(n), :, rows] = 1.0
    point = beliefs.point | (lever <= 0)
    if point[rows].any() and point.sum() > 1:
        # a tie between two point masses goes to the earlier contender
        value = np.where(lever > 0, beliefs.low * lever, 0.0)
        for i in np.flatnonzero(point[rows]):
            earlier = point & (value == value[rows[i]]) & (np.arange(m) < rows[i])
            f[i, :, earlier] = 0.0
    return f


def _exactly(f: FloatArray, top: int) -> FloatArray:
    """(top + 1, n, S): P(exactly j of the others exceed) for j = 0..top, the others' chances of staying
    below in f."""
    if top == 0:  # first place: all of them below
        first: FloatArray = f.prod(axis=-1)[None]
        return first
    np.maximum(f, FLOOR, out=f)
    all_below = np.exp(np.log(f).sum(axis=-1))
    rho = (1.0 - f) / f
    e = np.empty((top + 1, *f.shape[:-1]))
    e[0] = 1.0
    term = rho
    for j in range(1, top + 1):
        if j > 1:
            term = rho * (np.cumsum(term, axis=-1) - term)  # sum over b of rho_b x e_{j-1} of those before b
        e[j] = term.sum(axis=-1)
    out: FloatArray = all_below[None] * e
    return out
