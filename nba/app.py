"""The one place that wires nba together: rules, store, model, services and HTTP routes."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable

import numpy as np
from aiohttp import web
from redis.asyncio import Redis

from nba.customers import Customers
from nba.decide import Decider
from nba.events import EventIngest
from nba.http import routes, wire
from nba.live import Live
from nba.metrics import Metrics
from nba.rulebook import Rulebook
from nba.store.redis import Store


def redis_client(url: str, timeout: float) -> Redis:
    # one pool per process; hiredis parses replies when installed (a declared dependency)
    return Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, max_connections=256,
                          health_check_interval=30)


def create_app(rulebook: Rulebook, client: Redis, *, metrics: Metrics | None = None,
               rng: np.random.Generator | None = None, clock: Callable[[], float] = time.time,
               refresh_model: bool = True) -> web.Application:
    """`rng` and `clock` are parameters so tests decide deterministically; `refresh_model=False`
    leaves the model refresh to the caller (tests call `Live.refresh_model` when they want it)."""
    metrics = metrics or Metrics()
    store = Store(client, metrics.observe_redis)
    live = Live(rulebook, store, metrics)
    rng = rng if rng is not None else np.random.default_rng()
    app = web.Application(middlewares=[routes.problems], client_max_size=wire.MAX_EVENTS_BODY + 1)
    app[routes.LIVE] = live
    app[routes.STORE] = store
    app[routes.METRICS] = metrics
    app[routes.CLOCK] = clock
    app[routes.DECIDER] = Decider(live, store, metrics, rng, clock)
    app[routes.INGEST] = EventIngest(live, store, metrics)
    app[routes.CUSTOMERS] = Customers(live, store, clock)
    for method, path, handler in routes.ROUTES:
        # aiohttp's default placeholder refuses { and }: match them so the answer explains the 400
        app.router.add_route(method, re.sub(r"\{(\w+)\}", r"{\1:[^/]+}", path), handler)

    async def model_refresher(app: web.Application) -> AsyncIterator[None]:
        await live.refresh_model(force=True)
        task = asyncio.create_task(live.run()) if refresh_model else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await store.close()

    app.cleanup_ctx.append(model_refresher)
    return app
