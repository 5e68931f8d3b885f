"""What erasing a customer guarantees, and the background step that takes it off the disk.

`DELETE /v1/customers/{id}` (Store.erase) deletes every key of the customer in one script, deletes the
learner's inbox entries that still name it, and leaves a tombstone: a one-way hash of the id in a key
that names no one (keys.erased), so that for keys.ERASED_SECONDS (30 days) events for that id are
accepted and dropped (`erased` in the answer) and decisions for it are answered and not recorded. The
id does not come back in Redis unless the CRM writes a profile for it again (a new relationship: the
tombstone goes).

Redis's own files still hold what was deleted until it rewrites them: this process asks it to
(BGREWRITEAOF, and BGSAVE when snapshots are configured) within `interval` seconds of an erasure, one
process for all (a lock in Redis), at most once per interval. Redis then drops the old files itself.
A managed Redis that refuses the commands keeps them as long as its provider's settings say; that is
logged once.
"""

from __future__ import annotations

import asyncio
import logging

from nba.concurrency import stop_if_cancelled
from nba.metrics import Metrics
from nba.store.contract import Storage

log = logging.getLogger(__name__)
CHECK_SECONDS = 10.0  # how often each process looks for an erasure the files may still hold


class DiskRewrite:
    def __init__(self, store: Storage, metrics: Metrics, interval: float):
        self.store = store
        self.metrics = metrics
        self.interval = interval
        self._told_refused = False

    async def step(self) -> str:
        outcome = await self.store.rewrite_if_due(self.interval)
        if outcome != "none":
            self.metrics.child(self.metrics.erasure_rewrites, outcome).inc()
        if outcome == "started":
            log.info("asked Redis to rewrite its files on disk after an erasure")
        elif outcome == "refused" and not self._told_refused:
            self._told_refused = True
            log.warning(
                "Redis refused to rewrite its files after an erasure (BGREWRITEAOF/BGSAVE/CONFIG not "
                "allowed): erased customers stay in its files on disk as long as its own settings say"
            )
        return outcome

    async def run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            try:
                await self.step()
            except Exception:
                stop_if_cancelled()
                log.warning("checking for erasures to take off the disk failed", exc_info=True)
