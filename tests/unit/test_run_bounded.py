"""run_bounded: at most N jobs at once, and none left running once it has returned or raised."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

from nba.concurrency import run_bounded


async def test_at_most_the_bound_run_at_once() -> None:
    running, most, done = 0, 0, []

    async def job(i: int) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0)
        running -= 1
        done.append(i)

    await run_bounded((job(i) for i in range(50)), 4)
    assert most == 4
    assert sorted(done) == list(range(50))


async def test_a_failure_stops_the_jobs_in_flight() -> None:
    started: list[int] = []
    cancelled: list[int] = []
    release = asyncio.Event()

    async def slow(i: int) -> None:
        started.append(i)
        try:
            await release.wait()  # never set: only a cancellation ends these
        except asyncio.CancelledError:
            cancelled.append(i)
            raise

    async def failing() -> None:
        await asyncio.sleep(0)
        raise ConnectionError("gone")

    def jobs() -> Iterator[Coroutine[Any, Any, None]]:
        yield slow(0)
        yield slow(1)
        yield failing()
        yield slow(3)

    with pytest.raises(ConnectionError):
        await run_bounded(jobs(), 3)
    # the jobs in flight were stopped before it raised, not left running; the one not started never runs
    assert started == [0, 1]
    assert sorted(cancelled) == [0, 1]
