"""/healthz fails when this process can no longer serve, so that an orchestrator restarts it."""

from __future__ import annotations

import asyncio
import time

from nba.http.routes import SUPERVISION, TASKS
from nba.runtime.supervision import REDIS_DOWN_GRACE, Backoff, Supervision
from tests.api.helpers import Client, problem


async def test_healthz_fails_while_the_embedded_redis_stays_down(client: Client) -> None:
    assert client.app is not None
    supervision: Supervision = client.app[SUPERVISION]
    supervision.redis_down(time.time() - 5)  # restarting: not yet a reason
    assert (await client.get("/healthz")).status == 200
    supervision.redis_down(time.time() - REDIS_DOWN_GRACE - 1)
    body = await problem(await client.get("/healthz"), 503)
    assert body["code"] == "unhealthy"
    assert "embedded redis-server has been down" in body["errors"][0]["message"]
    text = await (await client.get("/metrics")).text()
    assert "nba_embedded_redis_up 0.0" in text
    supervision.redis_down(None)
    assert (await client.get("/healthz")).status == 200


async def test_healthz_fails_when_a_background_loop_died(client: Client) -> None:
    assert client.app is not None

    async def broken() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(broken(), name="learner")
    await asyncio.gather(task, return_exceptions=True)
    client.app[TASKS].append(task)
    body = await problem(await client.get("/healthz"), 503)
    assert "background task learner stopped: RuntimeError('boom')" in body["errors"][0]["message"]


def test_restart_pauses_double_while_a_process_keeps_dying_and_start_over_once_it_lasts() -> None:
    now = [0.0]
    backoff = Backoff(clock=lambda: now[0])
    assert [backoff.next_pause() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    backoff.started_now()
    now[0] += 61
    assert backoff.next_pause() == 1


def test_supervision_counts_are_shared_memory() -> None:
    shared = Supervision()
    seen_by_a_worker = Supervision(shared.shared)
    shared.count_restart("redis")
    shared.count_restart("worker")
    shared.count_restart("worker")
    assert (seen_by_a_worker.redis_restarts, seen_by_a_worker.worker_restarts) == (1, 2)
