"""Concurrency helpers: per-key asyncio locks that exist only while someone holds or waits for them,
bounded concurrency over many jobs, and the stop check of background loops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import Any


class KeyedLocks:
    """Serialises work on one key (a customer) inside this process without a lock per customer ever
    seen: an entry lives only while a holder or waiter needs it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


async def run_bounded(jobs: Iterable[Awaitable[Any]], workers: int) -> None:
    """Await `jobs` (lazily created, e.g. a generator of coroutines) with at most `workers` in flight.
    A few workers over one iterator rather than a task per job behind a semaphore: Python 3.11's
    Semaphore scans all its waiters on every acquire, so 10,000 waiting tasks starved the event loop."""
    it = iter(jobs)

    async def worker() -> None:
        for job in it:
            await job

    await asyncio.gather(*(worker() for _ in range(workers)))


def stop_if_cancelled() -> None:
    """Raise CancelledError when someone cancelled the current task, even if the CancelledError never
    reached us.

    A background loop that retries on `Exception` calls this first in its handler. A library can turn a
    cancellation into an ordinary error: redis-py reads under `asyncio.timeout` and disconnects on any
    exception, and a cancel that races with that timeout or that clean-up can come out as its
    TimeoutError. The loop would log a failed step and go on, and the stopping server would wait for it
    forever. That was seen as `nba serve` hanging on SIGTERM under load: its main task waited in clean-up
    while the pollers went on logging Redis timeouts."""
    task = asyncio.current_task()
    if task is not None and task.cancelling() > 0:
        raise asyncio.CancelledError
