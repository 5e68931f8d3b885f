"""Stopping: background loops end when cancelled, even when a library turns the cancellation into an error."""

from __future__ import annotations

import asyncio

import pytest

from nba.app import redis_client
from nba.learning.learner import Learner
from nba.metrics import Metrics
from nba.rules.rulebook import Rulebook
from nba.store.redis import Store


async def test_the_learner_loop_stops_when_its_cancellation_comes_back_as_a_timeout(
    redis_url: str, rulebook: Rulebook
) -> None:
    store = Store(redis_client(redis_url, 5.0))
    metrics = Metrics()
    learner = Learner(lambda: rulebook, store, metrics)
    entered = asyncio.Event()

    async def step() -> int:
        entered.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise TimeoutError("what redis-py can raise instead of the cancellation") from None
        return 0

    learner.step = step  # type: ignore[method-assign]
    task = asyncio.create_task(learner.run())
    try:
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 3)  # before the fix: logged "learner step failed" and went on
    finally:
        task.cancel()
        await store.close()
