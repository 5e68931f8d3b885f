"""The live rulebook and model every request reads: immutable snapshots, swapped whole, never mutated.

Each process keeps the model statistics in memory and polls their version in Redis every
`learning.refresh_seconds`; a request never waits for Redis to learn what the model says.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from nba.bandit import ModelState
from nba.metrics import Metrics
from nba.rulebook import Rulebook
from nba.store.redis import Store

log = logging.getLogger("nba.live")


@dataclass(frozen=True)
class Snapshot:
    rulebook: Rulebook
    model: ModelState


class Live:
    def __init__(self, rulebook: Rulebook, store: Store, metrics: Metrics):
        self.store = store
        self.metrics = metrics
        self._snapshot = Snapshot(rulebook, _empty_model(rulebook))
        metrics.rules.info({"version": rulebook.version})

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    async def refresh_model(self, *, force: bool = False) -> bool:
        """Reload the statistics when their version moved; True when a new model is in use."""
        current = self._snapshot
        if not force and await self.store.model_version() == current.model.version:
            return False
        version, counts = await self.store.model_counts()
        rb = current.rulebook
        model = ModelState.build(version, rb.prior_alpha, rb.prior_beta, [a.id for a in rb.actions],
                                 rb.learning.keys, counts)
        # the rulebook may have been swapped while we read: keep the newest of both
        if self._snapshot.rulebook is rb:
            self._snapshot = Snapshot(rb, model)
            self.metrics.model_version.set(float(version) if version.isdigit() else 0)
        return True

    async def run(self) -> None:
        """Background refresh loop; errors are counted and retried, never fatal."""
        while True:
            await asyncio.sleep(self._snapshot.rulebook.learning.refresh_seconds)
            try:
                await self.refresh_model()
            except Exception:  # a Redis hiccup must not stop learning for the life of the process
                self.metrics.model_refresh_errors.inc()
                log.warning("model refresh failed", exc_info=True)


def _empty_model(rb: Rulebook) -> ModelState:
    return ModelState.build("", rb.prior_alpha, rb.prior_beta, [a.id for a in rb.actions], rb.learning.keys, {})
