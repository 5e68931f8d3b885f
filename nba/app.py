"""The one place that wires nba together: rules, store, model, services and HTTP routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from aiohttp import web
from redis.exceptions import RedisError

from nba.access import audit
from nba.access.roles import Principal, Role
from nba.access.service import AccessControl
from nba.customers.erasure import DiskRewrite
from nba.customers.service import Customers
from nba.decision.decider import Decider
from nba.http import access, requestlog, routes, wire
from nba.http.body import BodyLimits
from nba.http.server import ConnectionGuard
from nba.learning.ingest import EventIngest
from nba.learning.learner import Learner
from nba.live import Live
from nba.metrics import Metrics
from nba.outbound.jobs import Jobs
from nba.rules.rulebook import Rulebook
from nba.runtime.supervision import Supervision
from nba.store import keys
from nba.store.client import Client, redis_client
from nba.store.redis import Store
from nba.store.unreadable import Unreadable

log = logging.getLogger(__name__)

__all__ = ["AppOptions", "create_app", "redis_client"]


SHUTDOWN_PATIENCE = 5.0  # seconds each clean-up step may take before a stopping server goes on without it
STARTUP_PATIENCE = 60.0  # seconds a starting server waits for Redis (it may start at the same time)


async def _first_contact(live: Live, rules_dir: Path | None, access_control: AccessControl) -> None:
    """Publish our rules if they changed since they were last published (otherwise take the current set:
    a rollback stays in force across restarts), load the model and the API keys (before the first
    request: a server with keys must never answer as an open one); a Redis that is starting, or paused,
    gets retried."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + STARTUP_PATIENCE
    while True:
        try:
            if rules_dir is not None:
                await live.publish(rules_dir, force=False)
            await live.refresh_model(force=True)
            await live.refresh_prices()
            await access_control.refresh(force=True)
            return
        except (RedisError, OSError) as exc:
            if loop.time() > give_up:
                raise
            log.warning("Redis not answering yet (%r); retrying", exc)
            await asyncio.sleep(0.5)


@dataclass(frozen=True)
class AppOptions:
    """How one server process runs (cli.py fills it from Settings; tests set what they need)."""

    rules_dir: Path | None = None  # published at start-up, watched, re-read by POST /v1/rules/reload
    metrics: Metrics | None = None
    rng: np.random.Generator | None = None  # seeded by tests, which decide deterministically
    clock: Callable[[], float] = time.time
    background: bool = True  # False leaves model refresh, rules sync and the learner to the caller
    decide_deadline: float = 0.25  # seconds before decide answers degraded instead of waiting for Redis
    body_limits: BodyLimits = field(default_factory=BodyLimits)
    erase_rewrite: float = 300.0  # seconds within which an erasure leaves Redis's files (customers/erasure.py)
    max_connections: int = 4096  # open connections beyond which idle ones close (http/server.py)
    supervision: Supervision | None = None  # what the supervising process shares (runtime/supervision.py)
    # without API keys, run open (every caller may do everything): serve allows it on loopback only, or
    # with --insecure-open (access/service.py)
    open_without_keys: bool = True
    loopback_callers_only: bool = True  # ... and then only for callers on loopback (not --insecure-open)
    workers: int = 1  # processes sharing the server: each takes its share of a key's rate
    durability: str = "memory"  # replica: events are answered once a replica has them (settings.py)


def create_app(rulebook: Rulebook, client: Client, options: AppOptions | None = None) -> web.Application:
    """The application of one server process over `client`'s Redis, starting from `rulebook`."""
    o = options or AppOptions()
    rules_dir, clock, supervision = o.rules_dir, o.clock, o.supervision
    metrics = o.metrics or Metrics()
    store = Store(
        client,
        metrics.observe_redis,
        Unreadable(metrics.count_unreadable),
        replicas=1 if o.durability == "replica" else 0,
    )
    live = Live(rulebook, store, metrics)
    rng = o.rng if o.rng is not None else np.random.default_rng()
    guard = ConnectionGuard(o.max_connections, metrics.count_dropped_connection)
    access_control = AccessControl(
        store,
        metrics,
        clock,
        open_without_keys=o.open_without_keys,
        loopback_callers_only=o.loopback_callers_only,
        workers=o.workers,
    )
    app = web.Application(
        middlewares=[requestlog.request_ids, guard.middleware, access.browsers, routes.problems, access.guard],
        client_max_size=wire.MAX_EVENTS_BODY + 1,
    )
    app[access.ACCESS] = access_control

    async def audit_directory(directory: Path, version: str) -> None:
        who = Principal("rules-directory", f"rules directory {directory}", Role.MARKETER)
        await access_control.audit.record(who, audit.RULES_RELOAD, version, "published from the directory")

    live.on_published = audit_directory
    app[access.CLOCK] = clock
    app[access.PERMISSIONS] = permissions = {}
    app[routes.GUARD] = guard
    app[routes.SUPERVISION] = supervision = supervision or Supervision()
    metrics.register_collector(supervision.collector())
    app[routes.TASKS] = []
    metrics.track(metrics.connections, lambda: guard.open)
    app[routes.LIVE] = live
    app[routes.STORE] = store
    app[routes.METRICS] = metrics
    app[routes.CLOCK] = clock
    app[routes.DECIDER] = Decider(live, store, metrics, rng, clock, o.decide_deadline)
    app[routes.INGEST] = EventIngest(store, metrics, clock)
    learner = Learner(lambda: live.snapshot.rulebook, store, metrics)
    app[routes.LEARNER] = learner
    rewrite = DiskRewrite(store, metrics, o.erase_rewrite)
    app[routes.CUSTOMERS] = Customers(live, store, clock)
    app[routes.OUTBOUND] = Jobs(store, lambda: live.snapshot, clock)
    app[routes.RULES_DIR] = rules_dir
    app[routes.BODY_LIMITS] = o.body_limits
    for method, path, handler, needs in routes.ROUTES:
        # aiohttp's default placeholder refuses { and }: match them so the answer explains the 400
        route = app.router.add_route(method, re.sub(r"\{(\w+)\}", r"{\1:[^/]+}", path), handler)
        permissions[route] = needs

    async def background_tasks(app: web.Application) -> AsyncIterator[None]:
        await asyncio.to_thread(keys.slot_tags)  # once, off the event loop, before the first event needs it
        await _first_contact(live, rules_dir, access_control)
        metrics.redis_up.set(1)  # reached: _first_contact waits until it is
        with contextlib.suppress(RedisError, OSError):
            for advice in await store.config_advice():
                log.warning("Redis configuration: %s", advice)
        tasks = (
            [
                asyncio.create_task(live.run(), name="model-refresh"),
                asyncio.create_task(live.follow_rules(rules_dir), name="rules-follow"),
                asyncio.create_task(learner.run(), name="learner"),
                asyncio.create_task(rewrite.run(), name="erasure-rewrite"),
                asyncio.create_task(access_control.run(), name="access-refresh"),
            ]
            if o.background
            else []
        )
        if o.background and metrics.sampled:
            tasks.append(asyncio.create_task(metrics.sample_forever(), name="metrics-sample"))
        app[routes.TASKS].extend(tasks)  # what /healthz watches
        yield
        for task in tasks:
            task.cancel()
        # bounded too: a task that swallowed its cancellation (see concurrency.stop_if_cancelled) must not hold
        # the stop forever; it is cancelled once more, and aiohttp cancels what is left after clean-up
        _, running = await asyncio.wait(tasks, timeout=SHUTDOWN_PATIENCE) if tasks else (set(), set())
        for task in running:
            log.warning("background task %s did not stop when cancelled", task.get_coro())
            task.cancel()
        # outbound runs of this process end as failed ("the server running it stopped")
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await asyncio.wait_for(app[routes.OUTBOUND].close(), SHUTDOWN_PATIENCE)
        # bounded: a stop must not wait on a Redis that is gone or stuck (the lease also expires by itself)
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await asyncio.wait_for(learner.stop(), SHUTDOWN_PATIENCE)  # hand the lease over now
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await asyncio.wait_for(store.close(), SHUTDOWN_PATIENCE)

    app.cleanup_ctx.append(background_tasks)
    return app
