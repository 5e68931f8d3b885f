"""Concurrency helpers: per-key asyncio locks that exist only while someone holds or waits for them,
bounded concurrency over many jobs, a deadline that does not count this process's own stalls, and the
stop check of background loops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from types import TracebackType
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

    tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        # the first failure (or a cancellation) stops the others too, rather than leaving them running
        # after the caller has moved on (and closed what they use)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


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


class Deadline:
    """`async with Deadline(seconds)`: like `asyncio.timeout(seconds)` (TimeoutError when it expires),
    except when its timer fires late. Then this process was not running at the deadline (a garbage
    collection, a long callback, a paused virtual machine), and the replies it waits for may have come
    in time and be waiting unread, with more steps to go (a decision reads, ranks, then writes): a plain
    timeout gives up on all of it, and every request in flight during a stall would give up on a Redis
    that answered. A late timer therefore grants a fresh `seconds` from the moment the process runs
    again, up to GRACES times; a wait that is really slow still ends once it has had its deadline of
    this process's running time."""

    GRACES = 3

    __slots__ = ("_due", "_graces", "_handle", "_loop", "_timeout", "on_stall", "seconds", "stall")

    def __init__(
        self, seconds: float, stall: float | None = None, on_stall: Callable[[], object] | None = None
    ) -> None:
        self.seconds = seconds
        self.stall = seconds / 5 if stall is None else stall  # lateness that means a stall, not a busy loop
        self.on_stall = on_stall  # told of every grace (decide counts them: operators see the stalls)

    async def __aenter__(self) -> Deadline:
        self._loop = asyncio.get_running_loop()
        self._timeout = asyncio.timeout(None)
        await self._timeout.__aenter__()
        self._graces = self.GRACES
        self._arm(self._loop.time() + self.seconds)
        return self

    def _arm(self, due: float) -> None:
        # the due time is kept here, not read back from the handle: uvloop returns a plain Handle, which
        # has no when(), for a time that has passed by the time it is scheduled (a pause in between)
        self._due = due
        self._handle = self._loop.call_at(due, self._expire)

    def _expire(self) -> None:
        now = self._loop.time()
        if now - self._due > self.stall and self._graces > 0:
            self._graces -= 1
            self._arm(now + self.seconds)
            if self.on_stall is not None:
                self.on_stall()
        else:
            self._timeout.reschedule(now)  # cancels the wait; __aexit__ turns that into TimeoutError

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._handle.cancel()
        await self._timeout.__aexit__(exc_type, exc, tb)  # raises TimeoutError when it expired
