"""Off-policy estimators over logged slots: how would a candidate policy have done? Pure numpy.

A slot is an action a logged decision showed at a rank, with the logging policy's probability p of that
action at that rank, the candidate's probability pi of the same, and the reward y. With w = pi / p, per
record i (summing its slots s):

    IPS     sum_s w y                                                  unbiased where p > 0 wherever pi > 0
    DR      sum_s [ direct_s + w (y - q_s) ]                           doubly robust: direct_s is the
            candidate's expected reward at that record and rank under a reward model, q_s the model's
            prediction for the logged action
    SNIPS   sum over ranks of (sum w y / sum w) x the candidate's mean chance of filling the rank

Intervals are 95% normal approximations over the per-record terms (SNIPS: over each record's influence
on the ratios, the delta method). `overlap` gives, per rank, what says whether to trust them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nba.domain import FloatArray, IntArray

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    n: int

    @staticmethod
    def from_terms(terms: FloatArray, value: float | None = None) -> Estimate:
        n = int(terms.shape[0])
        center = float(terms.mean()) if value is None else float(value)
        half = Z95 * float(terms.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
        return Estimate(center, center - half, center + half, n)


@dataclass(frozen=True)
class Slots:
    """The logged slots of `n` records (arrays aligned per slot)."""

    n: int
    record: IntArray  # which record, 0..n-1
    rank: IntArray
    p: FloatArray
    pi: FloatArray
    reward: FloatArray
    q: FloatArray  # the reward model for the logged action (DR)
    direct: FloatArray  # sum over the candidate's actions of pi x q, at this record and rank (DR)
    fill: FloatArray  # the candidate's chance of placing anything at this record and rank

    def __post_init__(self) -> None:
        if (self.p <= 0).any() or (self.p > 1).any():
            raise ValueError("logged probabilities must be in (0, 1]: an action shown with probability 0 cannot be")
        if (self.pi < 0).any() or (self.pi > 1).any():
            raise ValueError("candidate probabilities must be in [0, 1]")

    @property
    def weight(self) -> FloatArray:
        out: FloatArray = self.pi / self.p
        return out

    def per_record(self, values: FloatArray) -> FloatArray:
        out: FloatArray = np.bincount(self.record, weights=values, minlength=self.n).astype(np.float64)
        return out


def logged(s: Slots) -> Estimate:
    """What the logging policy earned per record."""
    return Estimate.from_terms(s.per_record(s.reward))


def ips(s: Slots) -> Estimate:
    return Estimate.from_terms(s.per_record(s.weight * s.reward))


def doubly_robust(s: Slots) -> Estimate:
    return Estimate.from_terms(s.per_record(s.direct + s.weight * (s.reward - s.q)))


def snips(s: Slots) -> Estimate:
    w = s.weight
    value, influence = 0.0, np.zeros(s.n)
    for rank in np.unique(s.rank):
        at = s.rank == rank
        a, b, f = s.per_record(w * s.reward * at), s.per_record(w * at), s.per_record(s.fill * at)
        a_bar, b_bar, f_bar = float(a.mean()), float(b.mean()), float(f.mean())
        if b_bar <= 0:  # the candidate never places a logged action here: nothing to normalise
            continue
        ratio = a_bar / b_bar
        value += ratio * f_bar
        influence += f_bar * (a - ratio * b) / b_bar + ratio * (f - f_bar)
    return Estimate.from_terms(influence + value, value)


@dataclass(frozen=True)
class Overlap:
    """One rank: its slots, the effective sample size (sum w)^2 / sum w^2, the largest weight, the mean
    weight and its standard error, and the candidate's mean chance of filling the rank (what the mean
    weight should be where the logging policy could show whatever the candidate shows)."""

    rank: int
    slots: int
    effective_sample_size: float
    largest_weight: float
    mean_weight: float
    mean_weight_se: float
    fill: float


def overlap(s: Slots, rank: int) -> Overlap:
    at = s.rank == rank
    w = s.weight[at]
    squares = float((w * w).sum())
    n = int(w.shape[0])
    return Overlap(
        rank=rank,
        slots=n,
        effective_sample_size=float(w.sum()) ** 2 / squares if squares > 0 else 0.0,
        largest_weight=float(w.max()) if n else 0.0,
        mean_weight=float(w.mean()) if n else 0.0,
        mean_weight_se=float(w.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf,
        fill=float(s.fill[at].mean()) if n else 0.0,
    )


def lift(model: tuple[float, float], control: tuple[float, float]) -> dict[str, object]:
    """Model vs control from (shown, rewards) of each arm: both rates with 95% intervals, their difference
    and the relative lift (model / control - 1) with delta-method intervals. Rewards lie in [0, 1], so
    p(1 - p) / n bounds each rate's variance."""
    (n_m, r_m), (n_c, r_c) = model, control
    if n_m <= 0 or n_c <= 0:
        return {"difference": None, "relative": None}
    p_m, p_c = r_m / n_m, r_c / n_c
    var_m, var_c = p_m * (1 - p_m) / n_m, p_c * (1 - p_c) / n_c
    diff = p_m - p_c
    se = math.sqrt(var_m + var_c)
    out: dict[str, object] = {
        "model_rate_95": [p_m - Z95 * math.sqrt(var_m), p_m + Z95 * math.sqrt(var_m)],
        "control_rate_95": [p_c - Z95 * math.sqrt(var_c), p_c + Z95 * math.sqrt(var_c)],
        "difference": diff,
        "difference_95": [diff - Z95 * se, diff + Z95 * se],
        "relative": None,
    }
    if p_m > 0 and p_c > 0:
        se_log = math.sqrt(var_m / p_m**2 + var_c / p_c**2)
        log_ratio = math.log(p_m / p_c)
        out["relative"] = p_m / p_c - 1
        out["relative_95"] = [math.exp(log_ratio - Z95 * se_log) - 1, math.exp(log_ratio + Z95 * se_log) - 1]
    return out
