"""The model in use with the rules it was built for: one immutable value a decision reads whole.

Built from the statistics the learner committed (or from the priors alone), for one rule set: a
snapshot never mixes the model of one rule set with another (nba/live.py swaps them together).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from nba.learning import forgetting
from nba.learning.bandit import ModelState
from nba.learning.contextual import ContextualModel, ContextualStats
from nba.rules.rulebook import Rulebook
from nba.store.contract import ModelData


@dataclass(frozen=True)
class Snapshot:
    rulebook: Rulebook
    model: ModelState  # per segment key
    contextual: ContextualModel
    arms: Mapping[str, tuple[float, float]]  # model/control: (shown, rewards) credited
    read_at: float = 0.0  # the time the forward-decayed statistics were read at (forgetting.reader_time)
    decay: tuple[float, float] = (0.0, 0.0)  # their landmark and half-life (0: nothing is forgotten)

    def stale(self, now: float) -> bool:
        """The statistics are forgotten in steps: a new step is due although no new answer came."""
        landmark, half_life = self.decay
        return half_life > 0 and forgetting.reader_time(now, landmark, half_life) != self.read_at


def build_snapshot(
    rb: Rulebook, data: ModelData | None, previous: Snapshot | None = None, now: float | None = None
) -> Snapshot:
    """The models of every action of `rb` from stored statistics (priors only when `data` is None), as
    they are at `now` when the statistics are forward-decayed (None: as of their landmark); posteriors
    unchanged since `previous` keep their tables (bandit.ModelState.build)."""
    action_ids = [a.id for a in rb.actions]
    read_at, decay = 0.0, (0.0, 0.0)
    if data is not None and data.half_life > 0:
        decay = (data.landmark, data.half_life)
        read_at = forgetting.reader_time(data.landmark if now is None else now, *decay)
        data = forgetting.at(data, read_at)
    model = ModelState.build(
        data.version if data else "",
        rb.prior_alpha,
        rb.prior_beta,
        action_ids,
        rb.learning.keys,
        data.counts if data else {},
        previous.model if previous is not None else None,
    )
    space = rb.learning.features
    rows = data.contextual if data and data.signature == space.signature else {}
    stats = ContextualStats.from_rows(action_ids, space.dim, {a: np.frombuffer(r, np.float64) for a, r in rows.items()})
    contextual = ContextualModel.build(
        stats,
        rb.group_of,
        len(rb.groups),
        rb.prior_alpha / (rb.prior_alpha + rb.prior_beta),
        rb.learning.prior_variance,
        rb.learning.noise_variance,
    )
    return Snapshot(rb, model, contextual, data.arms if data else {}, read_at, decay)
