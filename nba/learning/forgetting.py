"""Forgetting: the model's statistics are forward-decayed, so an answer counts half as much every
`learning.half_life` and a changed offer is noticed (pure, no I/O).

Decaying every stored sum at every batch would rewrite the whole model each time. Instead an example
learned at time t is *added* with weight 2^((t - landmark) / half_life) and readers multiply every sum
by 2^(-(now - landmark) / half_life): the same decayed sums, with only additions on the write path.
The weights grow with time, so once they pass 2^REBASE_AFTER the learner rewrites the statistics
against a new landmark (Store.rebase_model); the same rewrite converts them when the half-life
changes. Readers round `now` down to a step of half_life / STEPS (a 1% change), so that the
posteriors of actions without new answers stay identical between model versions and keep their
precomputed tables (bandit.ModelState.build).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from nba.domain import FloatArray
from nba.store.contract import ModelData

REBASE_AFTER = 32.0  # half-lives since the landmark before the learner rebases (weights up to 2^32)
STEPS = 64  # readers' time steps per half-life


def weights(times: FloatArray, landmark: float, half_life: float) -> FloatArray:
    """What examples learned at `times` (seconds) add to the stored sums."""
    if half_life <= 0:
        return np.ones_like(times)
    out: FloatArray = np.exp2((times - landmark) / half_life)
    return out


def reader_time(now: float, landmark: float, half_life: float) -> float:
    """`now` rounded down to the readers' step, never before the landmark."""
    if half_life <= 0:
        return landmark
    step = half_life / STEPS
    return max(landmark, math.floor(now / step) * step)


def factor(now: float, landmark: float, half_life: float) -> float:
    """What the stored sums are multiplied by to read them at `now` (1 when nothing is forgotten)."""
    if half_life <= 0:
        return 1.0
    return math.exp2(-(now - landmark) / half_life)


def needs_rebase(now: float, landmark: float, stored_half_life: float, half_life: float) -> bool:
    """The stored units are not the wanted ones, or their weights have grown large."""
    if stored_half_life != half_life:
        return True
    return half_life > 0 and (now - landmark) / half_life > REBASE_AFTER


def at(data: ModelData, now: float) -> ModelData:
    """The statistics as they are worth at `now`, expressed against a landmark of `now` (unchanged when
    nothing is forgotten): what readers use, and what the learner rebases to."""
    scale = factor(now, data.landmark, data.half_life)
    if scale == 1.0:
        return data
    return replace(
        data,
        counts={cell: (n * scale, r * scale) for cell, (n, r) in data.counts.items()},
        contextual={a: (np.frombuffer(row, np.float64) * scale).tobytes() for a, row in data.contextual.items()},
        landmark=now,
    )
