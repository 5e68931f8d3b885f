"""What the model in use believes about each candidate's propensity for one customer, as distributions a
decision draws from (arbitration.py) and integrates over (placement.py).

Every distribution has a bounded support [low, high] inside [0, 1]: posteriors are truncated at their
TAIL quantiles (learning/bandit.py), so an arm that cannot reach the top is known for certain. Kinds:

- `table`: a Beta posterior of the per-segment model as its CDF at GRID + 1 evenly spaced points from low
  to high, with a uniform density in between (bandit.cdf_table);
- `normal`: the linear contextual model's score, loc + scale x Z with Z standard normal, truncated to its
  TAIL quantiles and to [0, 1];
- `logistic`: the logistic contextual model's, sigmoid(loc + scale x Z), Z truncated the same way.

`exploration` scales every draw's distance from the centre: 1 is Thompson sampling as is, 0.3 a cautious
call-center agent's 30%, 0 always the point estimate. A candidate whose support is a single point (no
exploration, or no uncertainty left) is a point mass: it always takes that value.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
from scipy.special import expit, logit, ndtr, ndtri

from nba.domain import FloatArray, IntArray
from nba.learning.bandit import GRID, TAIL
from nba.learning.snapshot import Snapshot

Kind = Literal["table", "normal", "logistic"]
STRATA = 64  # quadrature strata per belief (placement.py)


@dataclass(frozen=True)
class Beliefs:
    """Arrays aligned with the candidates. table: `grid` (m, GRID + 1) is the CDF at evenly spaced points
    from low to high. normal/logistic: Z's bounds in probability, `p_low` and `p_high`, and loc, scale
    (in logit space for logistic)."""

    kind: Kind
    mean: FloatArray  # the point estimate (what a decision reports as propensity)
    low: FloatArray
    high: FloatArray
    grid: FloatArray
    loc: FloatArray
    scale: FloatArray
    p_low: FloatArray
    p_high: FloatArray

    @staticmethod
    def table(
        mean: FloatArray, low: FloatArray, high: FloatArray, grid: FloatArray, exploration: float = 1.0
    ) -> Beliefs:
        zero = np.zeros_like(mean)
        if exploration != 1.0:
            low, high = mean + exploration * (low - mean), mean + exploration * (high - mean)
        return Beliefs("table", mean, low, high, grid, zero, zero, zero, zero)

    @staticmethod
    def normal(loc: FloatArray, scale: FloatArray, exploration: float = 1.0) -> Beliefs:
        """N(loc, scale^2) truncated to its TAIL quantiles and to [0, 1]; entirely outside [0, 1], a point
        mass at the nearer end."""
        return Beliefs._gaussian("normal", loc, scale * exploration, np.clip(loc, 0.0, 1.0))

    @staticmethod
    def logistic(loc: FloatArray, scale: FloatArray, exploration: float = 1.0) -> Beliefs:
        """sigmoid(N(loc, scale^2)) with the normal truncated to its TAIL quantiles."""
        return Beliefs._gaussian("logistic", loc, scale * exploration, expit(loc))

    @staticmethod
    def _gaussian(kind: Kind, loc: FloatArray, scale: FloatArray, mean: FloatArray) -> Beliefs:
        loc = np.asarray(loc, float)
        scale = np.maximum(np.asarray(scale, float), 0.0)
        spread = scale > 0
        safe = np.where(spread, scale, 1.0)
        p_low, p_high = np.full_like(loc, TAIL), np.full_like(loc, 1.0 - TAIL)
        if kind == "normal":  # and within [0, 1]
            p_low = np.maximum(p_low, ndtr((0.0 - loc) / safe))
            p_high = np.minimum(p_high, ndtr((1.0 - loc) / safe))
        spread &= p_high > p_low
        low = _to_theta(kind, loc + safe * ndtri(np.where(spread, p_low, 0.5)))
        high = _to_theta(kind, loc + safe * ndtri(np.where(spread, p_high, 0.5)))
        low, high = np.where(spread, low, mean), np.where(spread, high, mean)
        grid = np.zeros((loc.shape[0], 0))
        return Beliefs(kind, mean, low, high, grid, loc, np.where(spread, scale, 0.0), p_low, p_high)

    @staticmethod
    def points(value: FloatArray) -> Beliefs:
        """Candidates that always take `value` (the order the rules alone imply)."""
        zero = np.zeros_like(value)
        return Beliefs("normal", value, value, value, np.zeros((value.shape[0], 0)), value, zero, zero, zero)

    def at_mean(self) -> Beliefs:
        """The same candidates as point masses at their point estimates (no exploration)."""
        return Beliefs.points(self.mean)

    def take(self, idx: IntArray) -> Beliefs:
        return Beliefs(
            self.kind,
            self.mean[idx],
            self.low[idx],
            self.high[idx],
            self.grid[idx],
            self.loc[idx],
            self.scale[idx],
            self.p_low[idx],
            self.p_high[idx],
        )

    @cached_property
    def _stacked(self) -> tuple[FloatArray, IntArray]:
        """Every table in one increasing array (row r shifted by 2r) for one search per draw, and where each
        row starts in it."""
        m = self.grid.shape[0]
        stacked: FloatArray = (self.grid + 2.0 * np.arange(m)[:, None]).ravel()
        return stacked, np.arange(0, m * (GRID + 1), GRID + 1)

    @property
    def point(self) -> np.ndarray:
        """Which candidates always take one value (low == high)."""
        out: np.ndarray = self.high <= self.low
        return out

    def cdf(self, t: FloatArray, rows: IntArray | None = None) -> FloatArray:
        """P(propensity <= t): t's last axis runs over candidates `rows` (all of them when None)."""
        r = np.arange(self.low.shape[0]) if rows is None else rows
        low, high = self.low[r], self.high[r]
        if self.kind == "table":
            width = high - low
            x = np.clip((t - low) / np.where(width > 0, width, 1.0), 0.0, 1.0) * GRID
            i = np.minimum(x.astype(np.int64), GRID - 1)
            at = i + (r * (GRID + 1))  # into the flattened tables
            flat = self.grid.ravel()
            left = flat[at]
            f = left + (x - i) * (flat[at + 1] - left)
        else:
            scale = self.scale[r]
            z = (_from_theta(self.kind, t) - self.loc[r]) / np.where(scale > 0, scale, 1.0)
            p_low, p_high = self.p_low[r], self.p_high[r]
            f = np.clip((ndtr(z) - p_low) / np.where(p_high > p_low, p_high - p_low, 1.0), 0.0, 1.0)
        out: FloatArray = np.where(high > low, f, (t >= low).astype(float))
        return out

    def below(self, u: FloatArray, lever: FloatArray) -> FloatArray:
        """(*u.shape, m): the chance that each candidate's priority (propensity x lever) is at most u.
        The hot part of placement.py: a few whole-array operations when no candidate is a point mass."""
        if self.point.any() or (lever <= 0).any():
            positive = lever > 0
            t = np.where(positive, u[..., None] / np.where(positive, lever, 1.0), np.inf)
            return self.cdf(t)
        if self.kind != "table":
            return self.cdf(u[..., None] / lever)
        m = lever.shape[0]
        width = self.high - self.low
        x = u[..., None] * (GRID / (lever * width))
        x -= self.low * (GRID / width)
        np.clip(x, 0.0, GRID, out=x)
        i = np.minimum(x.astype(np.intp), GRID - 1)
        x -= i
        i += np.arange(0, m * (GRID + 1), GRID + 1)  # into the flattened tables
        flat = self.grid.ravel()
        left = flat.take(i)
        right = flat.take(i + 1)
        right -= left
        right *= x
        right += left
        return right

    def quantile(self, p: FloatArray, rows: IntArray) -> FloatArray:
        """The value below which candidate rows[i] falls with probability p[i, ...] (p in [0, 1])."""
        shape = p.shape
        p = p.reshape(rows.shape[0], -1)
        low, high = self.low[rows, None], self.high[rows, None]
        if self.kind == "table":
            g = self.grid[rows]
            i = np.clip((g[:, None, :] <= p[..., None]).sum(axis=-1) - 1, 0, GRID - 1)
            left = np.take_along_axis(g, i, axis=1)
            right = np.take_along_axis(g, i + 1, axis=1)
            step = right - left
            frac = np.where(step > 0, (p - left) / np.where(step > 0, step, 1.0), 0.0)
            theta = low + (i + frac) * ((high - low) / GRID)
        else:
            p_low, p_high = self.p_low[rows, None], self.p_high[rows, None]
            z = ndtri(np.clip(p_low + p * (p_high - p_low), 1e-300, 1.0 - 1e-16))
            theta = _to_theta(self.kind, self.loc[rows, None] + self.scale[rows, None] * z)
        out: FloatArray = np.where(high > low, np.clip(theta, low, high), low).reshape(shape)
        return out

    def sample(self, rng: np.random.Generator, draws: int = 1) -> FloatArray:
        """(draws, m): independent draws of every candidate."""
        m = self.low.shape[0]
        p = rng.random((draws, m))
        if self.kind != "table":
            return self.quantile(p.T, np.arange(m)).T
        stacked, base = self._stacked
        at = np.searchsorted(stacked, p + 2.0 * np.arange(m), side="right") - 1
        i = np.minimum(at - base, GRID - 1)
        at = base + i
        flat = self.grid.ravel()
        left = flat[at]
        step = flat[at + 1] - left
        frac = np.minimum((p - left) / np.where(step > 0, step, 1.0), 1.0)
        out: FloatArray = self.low + (i + frac) * ((self.high - self.low) / GRID)
        return out

    def nodes(self, rows: IntArray, cut: FloatArray, strata: int = STRATA) -> tuple[FloatArray, FloatArray]:
        """Quadrature over each candidate rows[i]'s distribution above cut[i]: (weights, values), each
        (len(rows), strata): the midpoint rule in probability. A table's strata are runs of GRID / strata
        of its intervals, a normal or logistic belief's are of equal probability; the stratum that holds
        `cut` keeps only its part above."""
        if self.kind == "table":
            levels = self.grid[rows][:, :: GRID // strata]
        else:
            levels = np.broadcast_to(np.linspace(0.0, 1.0, strata + 1), (rows.shape[0], strata + 1))
        lo = np.maximum(levels[:, :-1], self.cdf(cut, rows)[:, None])
        hi = levels[:, 1:]
        weight = np.clip(hi - lo, 0.0, None)
        return weight, self.quantile((lo + hi) / 2.0, rows)


def _to_theta(kind: Kind, score: FloatArray) -> FloatArray:
    out: FloatArray = expit(score) if kind == "logistic" else score
    return out


def _from_theta(kind: Kind, t: FloatArray) -> FloatArray:
    if kind != "logistic":
        return t
    out: FloatArray = logit(np.clip(t, 1e-300, 1.0 - 1e-16))
    return out


def beliefs_for(
    snap: Snapshot, model: str, exploration: float, candidates: IntArray, key: int, x: FloatArray | None
) -> Beliefs:
    """The model's beliefs about `candidates` for this customer: the channel's model and exploration."""
    if model == "contextual" and x is not None:
        loc, scale = snap.contextual.score(x, candidates)
        if snap.contextual.link == "logistic":
            return Beliefs.logistic(loc, scale, exploration)
        return Beliefs.normal(loc, scale, exploration)
    m = snap.model
    c = candidates
    return Beliefs.table(m.mean[c, key], m.low[c, key], m.high[c, key], m.table[c, key], exploration)
