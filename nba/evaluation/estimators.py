"""Off-policy estimators: how would a candidate policy have done on logged decisions? Pure numpy.

Each logged decision i showed action a_i with the logged policy's probability p_i (the `probability`
every decision records) and earned reward r_i. A candidate policy would have chosen a_i with
probability pi_i. With importance weights w_i = pi_i / p_i:

    IPS   = mean(w r)                                  unbiased, high variance
    SNIPS = sum(w r) / sum(w)                          self-normalised: small bias, less variance
    DR    = mean(sum_a pi(a|x) q(x,a) + w (r - q(x,a_i)))   doubly robust with a reward model q

Confidence intervals are normal approximations over the per-decision terms (delta method for SNIPS);
the effective sample size (sum w)^2 / sum w^2 says how many logged decisions the estimate is really
worth. Few effective samples mean the candidate is too far from what was logged to judge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nba.domain import FloatArray

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
        center = float(terms.mean()) if value is None else value
        half = Z95 * float(terms.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
        return Estimate(center, center - half, center + half, n)


def _check(p: FloatArray, pi: FloatArray, r: FloatArray) -> FloatArray:
    if not (p.shape == pi.shape == r.shape) or p.ndim != 1 or p.shape[0] == 0:
        raise ValueError("logged probabilities, target probabilities and rewards must be equal-length 1-d arrays")
    if (p <= 0).any() or (p > 1).any():
        raise ValueError("logged probabilities must be in (0, 1]: an action shown with probability 0 cannot be")
    if (pi < 0).any() or (pi > 1).any():
        raise ValueError("target probabilities must be in [0, 1]")
    weights: FloatArray = pi / p
    return weights


def ips(p: FloatArray, pi: FloatArray, r: FloatArray) -> Estimate:
    w = _check(p, pi, r)
    return Estimate.from_terms(w * r)


def snips(p: FloatArray, pi: FloatArray, r: FloatArray) -> Estimate:
    w = _check(p, pi, r)
    total = float(w.sum())
    if total == 0:
        raise ValueError("the candidate gives every logged action probability 0: nothing to estimate from")
    value = float((w * r).sum()) / total
    # delta method: the estimate is a ratio of means
    terms = w * (r - value) / (total / w.shape[0]) + value
    return Estimate.from_terms(terms, value)


def doubly_robust(
    p: FloatArray, pi: FloatArray, r: FloatArray, q_logged: FloatArray, q_expected: FloatArray
) -> Estimate:
    """`q_logged[i]` is the reward model's prediction for the logged action, `q_expected[i]` the
    candidate's expected reward under the model, sum over a of pi(a|x_i) q(x_i, a)."""
    w = _check(p, pi, r)
    if not (q_logged.shape == q_expected.shape == r.shape):
        raise ValueError("reward model predictions must have one value per logged decision")
    return Estimate.from_terms(q_expected + w * (r - q_logged))


def effective_sample_size(p: FloatArray, pi: FloatArray) -> float:
    w = pi / p
    squares = float((w * w).sum())
    return float(w.sum()) ** 2 / squares if squares > 0 else 0.0


def bootstrap_check(
    p: FloatArray, pi: FloatArray, r: FloatArray, rng: np.random.Generator, rounds: int = 200
) -> tuple[float, float]:
    """A percentile bootstrap 95% interval of IPS, to cross-check the normal approximation."""
    w = _check(p, pi, r)
    n = w.shape[0]
    idx = rng.integers(0, n, size=(rounds, n))
    values = (w[idx] * r[idx]).mean(axis=1)
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


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
