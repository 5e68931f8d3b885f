"""The live rulebook and model every request reads: immutable snapshots, swapped whole, never mutated.

Each process keeps the model statistics in memory and polls their version in Redis every
`learning.refresh_seconds`; a request never waits for Redis to learn what the model says.

Rule sets are shared through Redis: a process that sees its rules directory change (or is asked to
reload) validates the new set and publishes it (the directory is scanned every WATCH_SECONDS, and a
change is published once two scans agree on it, so a set still being written is not); every process
polls the current version every RULES_POLL_SECONDS and swaps to it, so all converge within about two
and a half seconds of a save. An invalid set is never published, so it never replaces the running one.
Model statistics are keyed by action id and survive any reload.

What a rollback means: `nba rules rollback` makes the previous published set current while the files
may still hold the newer one. The directory is published again only when its content changes (or on
an explicit reload): start-up and the watcher compare the directory's content version with the one
last published from a directory (`nba:{rules}:source`), never with what is current, so neither a
restart nor a watcher that noticed a touched file undoes the rollback.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
from redis.exceptions import RedisError

from nba.concurrency import stop_if_cancelled
from nba.errors import RulesInvalid
from nba.learning.snapshot import Snapshot, build_snapshot
from nba.metrics import Metrics
from nba.rules.directory import directory_fingerprint, read_rules, rulebook_from_files
from nba.rules.rulebook import Rulebook
from nba.store.contract import Storage

log = logging.getLogger(__name__)
RULES_POLL_SECONDS = 0.5  # Redis: a GET of the current version
# The directory: stat-ing every rule file is slow on some file systems (2.5 ms an open() was measured on
# a VM here; at four scans a second an idle server spent a third of a core on it).
WATCH_SECONDS = 1.0


@dataclass(frozen=True)
class Reload:
    version: str
    changed: bool


class Live:
    def __init__(self, rulebook: Rulebook, store: Storage, metrics: Metrics):
        self.store = store
        self.metrics = metrics
        self._snapshot = build_snapshot(rulebook, None)
        self._swap_lock = asyncio.Lock()
        self._refused: str | None = None  # a published version that does not validate here: not retried
        self._seen: tuple[tuple[str, int, int], ...] | None = None  # the watched directory's last fingerprint
        self._changing: tuple[tuple[str, int, int], ...] | None = None  # ... at the previous scan
        self._next_scan = 0.0
        # channel -> [(from, until, capacity price)] of its outbound runs' days, for channels whose capacity
        # is real_time (read with the model's version; outbound/run.py writes them)
        self._prices: dict[str, list[tuple[float, float, float]]] = {}
        # told of every version published from the directory by itself (start-up, the watcher), for the
        # audit trail; an explicit reload is audited by whoever asked for it
        self.on_published: Callable[[Path, str], Awaitable[None]] | None = None
        metrics.rules_in_use(rulebook.version)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    # ------------------------------------------------------------------------------------- model

    async def refresh_model(self, *, force: bool = False) -> bool:
        """Reload the statistics when their version moved; True when a new model is in use."""
        current = self._snapshot
        if not force and not current.stale(time.time()) and await self.store.model_version() == current.model.version:
            return False
        snap = await self._snapshot_for(current.rulebook)
        # the rulebook may have been swapped while we read: a model only ever goes with its rulebook
        if self._snapshot.rulebook is current.rulebook:
            self._snapshot = snap
            version = snap.model.version
            self.metrics.model_version.set(float(version) if version.isdigit() else 0)
            for arm, (shown, reward) in snap.arms.items():
                self.metrics.arm_shown.labels(arm).set(shown)
                self.metrics.arm_reward.labels(arm).set(reward)
        return True

    async def _snapshot_for(self, rb: Rulebook) -> Snapshot:
        data = await self.store.model_data()
        # inverting one d x d matrix per action takes milliseconds with many actions: off the event loop,
        # so requests keep being answered on the old snapshot meanwhile
        return await asyncio.to_thread(build_snapshot, rb, data, self._snapshot, time.time())

    # ------------------------------------------------------------------------------------- rules

    async def _adopt(self, rb: Rulebook) -> None:
        async with self._swap_lock:
            if rb.version == self._snapshot.rulebook.version:
                return
            self._snapshot = await self._snapshot_for(rb)
            self.metrics.rules_in_use(rb.version)
            self.metrics.rules_reloads.labels("applied").inc()
            log.info("rules version %s in use (%d actions)", rb.version, len(rb.actions))

    async def publish(self, directory: Path, *, force: bool = True) -> Reload:
        """Validate `directory` and make it the rule set of every process. Raises RulesInvalid (and
        changes nothing) when it is invalid. Without `force` (start-up, the watcher), only a directory
        whose content differs from the last one published is published: see the module's docstring."""
        # looked at before reading: a change while we read is seen by the next scan
        self._seen = await asyncio.to_thread(directory_fingerprint, directory)
        try:
            rb, files = read_rules(directory)
        except RulesInvalid:
            self.metrics.rules_reloads.labels("invalid").inc()
            raise
        changed = await self.store.publish_rules(rb.version, files, force=force)
        if force:
            await self._adopt(rb)
        else:
            if changed and self.on_published is not None:
                await self.on_published(directory, rb.version)
            await self.sync_rules()  # ours, or whatever stays current (a rollback)
        return Reload(rb.version, changed)

    async def sync_rules(self) -> bool:
        """Swap to the version published in Redis if it differs from ours; True when swapped."""
        version = await self.store.current_rules_version()
        if version is None or version in (self._snapshot.rulebook.version, self._refused):
            return False
        files = await self.store.rules_files(version)
        if files is None:
            return False
        try:
            rb = await asyncio.to_thread(rulebook_from_files, files)
        except RulesInvalid as exc:  # published by a different nba version with other rules? keep ours
            self._refused = version  # refused once, logged once: not re-read every poll
            self.metrics.rules_reloads.labels("invalid").inc()
            log.error(
                "published rules %s do not validate here, keeping %s:\n%s",
                version,
                self._snapshot.rulebook.version,
                exc,
            )
            return False
        await self._adopt(rb)
        return True

    def capacity_price(self, channel: str, now: float) -> float:
        """What a real-time decision on `channel` must beat on top of doing nothing: the capacity price of
        the latest outbound run for the channel's current day, when its rules say real_time."""
        days = self._prices.get(channel)
        if not days:
            return 0.0
        cap = self._snapshot.rulebook.channels.get(channel)
        if cap is None or cap.capacity is None or not cap.capacity.real_time:
            return 0.0
        return next((price for start, until, price in days if start <= now < until), 0.0)

    async def refresh_prices(self) -> None:
        prices: dict[str, list[tuple[float, float, float]]] = {}
        for field, raw in (await self.store.capacity_prices()).items():
            try:
                doc = orjson.loads(raw)
                price = float(doc["price"])
                if not math.isfinite(price) or price < 0:
                    raise ValueError(f"not a price: {price}")
                day = (float(doc["from_ms"]) / 1000, float(doc["until_ms"]) / 1000, price)
            except (ValueError, KeyError, TypeError):
                self.store.unreadable("capacity_price", field, raw)
                continue
            prices.setdefault(field.partition("|")[0], []).append(day)
        self._prices = prices

    # ------------------------------------------------------------------------------ background

    async def run(self) -> None:
        """Background model refresh; errors are counted and retried, never fatal."""
        while True:
            await asyncio.sleep(self._snapshot.rulebook.learning.refresh_seconds)
            try:
                await self.refresh_model()
                await self.refresh_prices()
                self.metrics.redis_up.set(1)
            except Exception as exc:  # a Redis hiccup must not stop learning for the life of the process
                stop_if_cancelled()
                self.metrics.model_refresh_errors.inc()
                if isinstance(exc, (RedisError, OSError)):
                    self.metrics.redis_up.set(0)
                log.warning("model refresh failed", exc_info=True)

    async def follow_rules(self, directory: Path | None) -> None:
        """Publish `directory` when its files change; follow what other processes publish."""
        while True:
            await asyncio.sleep(RULES_POLL_SECONDS)
            try:
                await self.watch_once(directory)
            except Exception:
                stop_if_cancelled()
                self.metrics.rules_reloads.labels("error").inc()
                log.warning("rules sync failed", exc_info=True)

    async def watch_once(self, directory: Path | None, *, scan: bool | None = None) -> None:
        """One step of following the rules: every WATCH_SECONDS (or when `scan` says so) look at the
        directory and publish it when its files changed; then follow the published version."""
        loop = asyncio.get_running_loop()
        if scan is None:
            scan = directory is not None and loop.time() >= self._next_scan
        if scan and directory is not None:
            self._next_scan = loop.time() + WATCH_SECONDS
            # the stat calls run in a thread: on a slow file system they would stall every request
            now = await asyncio.to_thread(directory_fingerprint, directory)
            settled, self._changing = now == self._changing, now
            # published only once it looked the same at two scans: files being written (an editor, a git
            # checkout of several files) would otherwise publish a half-written or half-updated set
            if now != self._seen and settled:
                try:
                    await self.publish(directory, force=False)
                except RulesInvalid as exc:
                    log.error(
                        "rules in %s are invalid, still running %s:\n%s",
                        directory,
                        self._snapshot.rulebook.version,
                        exc,
                    )
        await self.sync_rules()
