"""HTTP transport: decode -> call -> encode, a few lines per route. No decision logic here."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from nba.customers.service import Customers
from nba.decision.decider import Decider
from nba.errors import (
    Conflict,
    FieldError,
    InvalidRequest,
    MethodNotAllowed,
    NbaError,
    NotFound,
    PayloadTooLarge,
    RulesInvalid,
    RulesRejected,
    Unavailable,
)
from nba.evaluation import stats
from nba.http import body as bodies
from nba.http import wire
from nba.http.openapi import openapi_bytes
from nba.http.problem import problem_response
from nba.http.server import ConnectionGuard
from nba.learning.ingest import EventIngest
from nba.learning.learner import Learner
from nba.live import Live
from nba.metrics import Metrics
from nba.runtime.supervision import Supervision
from nba.store.contract import Storage

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LIVE = web.AppKey("live", Live)
DECIDER = web.AppKey("decider", Decider)
INGEST = web.AppKey("ingest", EventIngest)
LEARNER = web.AppKey("learner", Learner)
CUSTOMERS = web.AppKey("customers", Customers)
STORE = web.AppKey("store", Storage)
METRICS = web.AppKey("metrics", Metrics)
Clock = Callable[[], float]
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
RULES_DIR: web.AppKey[Path | None] = web.AppKey("rules_dir")
BODY_LIMITS = web.AppKey("body_limits", bodies.BodyLimits)
GUARD = web.AppKey("guard", ConnectionGuard)
SUPERVISION = web.AppKey("supervision", Supervision)
TASKS: web.AppKey[list[asyncio.Task[None]]] = web.AppKey("tasks")


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


async def read_json(request: web.Request, limit: int) -> Any:
    return await bodies.read_json(request, limit, request.app[BODY_LIMITS])


def customer_id(request: web.Request) -> str:
    errors: list[FieldError] = []
    cid = wire.check_id(request.match_info["customer_id"], "customer_id", errors)
    if errors:
        raise InvalidRequest("invalid customer id in the path", errors=errors)
    return cid or ""


# ------------------------------------------------------------------------------------------- routes


async def decide(request: web.Request) -> web.Response:
    app = request.app
    body = await read_json(request, wire.MAX_DECIDE_BODY)
    req = wire.parse_decide(body, app[LIVE].snapshot.rulebook)
    start = time.perf_counter()
    decision = await app[DECIDER].decide(req)
    metrics = app[METRICS]
    metrics.child(metrics.decision_ms, req.channel).observe((time.perf_counter() - start) * 1000)
    return json_response(wire.decision_body(decision))


async def events(request: web.Request) -> web.Response:
    app = request.app
    body = await read_json(request, wire.MAX_EVENTS_BODY)
    batch = wire.parse_events(body, app[LIVE].snapshot.rulebook, app[CLOCK]())
    result = await app[INGEST].ingest(batch)
    return json_response(wire.ingest_body(result), status=202)


async def put_customer(request: web.Request) -> web.Response:
    cid = customer_id(request)
    attrs = wire.parse_attributes(await read_json(request, wire.MAX_CUSTOMER_BODY))
    return json_response(await request.app[CUSTOMERS].replace(cid, attrs))


async def patch_customer(request: web.Request) -> web.Response:
    cid = customer_id(request)
    attrs = wire.parse_attributes(await read_json(request, wire.MAX_CUSTOMER_BODY))
    return json_response(await request.app[CUSTOMERS].merge(cid, attrs))


async def get_customer(request: web.Request) -> web.Response:
    return json_response(await request.app[CUSTOMERS].read(customer_id(request)))


async def delete_customer(request: web.Request) -> web.Response:
    await request.app[CUSTOMERS].erase(customer_id(request))
    return web.Response(status=204)


async def rules(request: web.Request) -> web.Response:
    return json_response(wire.rules_body(request.app[LIVE].snapshot.rulebook))


async def reload_rules(request: web.Request) -> web.Response:
    """Re-read the rules directory; a valid set becomes every process's, an invalid one changes nothing."""
    directory = request.app[RULES_DIR]
    if directory is None:
        raise Conflict("this server was started without a rules directory", code="no_rules_directory")
    try:
        result = await request.app[LIVE].publish(directory)
    except RulesInvalid as exc:
        raise RulesRejected(
            f"{len(exc.problems)} problem(s) in {directory}; still running "
            f"{request.app[LIVE].snapshot.rulebook.version}",
            errors=[
                FieldError(f"{p.file}:{p.line}: {p.path}" if p.line else f"{p.file}: {p.path}", p.message)
                for p in exc.problems
            ],
        ) from None
    return json_response({"version": result.version, "changed": result.changed})


async def action_stats(request: web.Request) -> web.Response:
    """Read from the store, not the process's model copy: an operator sees what the learner committed."""
    store = request.app[STORE]
    data = await store.model_data()
    rb = request.app[LIVE].snapshot.rulebook
    return json_response(stats.report(rb, data, await store.event_counts(), time.time()))


async def healthz(request: web.Request) -> web.Response:
    """Liveness: fails when this process can no longer serve and a restart of it would help (its embedded
    Redis stays down, a background loop died), not when an external Redis is away (see /readyz)."""
    problems = request.app[SUPERVISION].problems(time.time())
    problems += [
        f"background task {t.get_name()} stopped: {t.exception()!r}"
        for t in request.app[TASKS]
        if t.done() and not t.cancelled()
    ]
    if problems:
        raise Unavailable(
            "this server process can no longer serve; restart it",
            code="unhealthy",
            errors=[FieldError("", p) for p in problems],
        )
    return json_response({"status": "ok", "pid": os.getpid()})


async def readyz(request: web.Request) -> web.Response:
    try:
        await asyncio.wait_for(request.app[STORE].ping(), timeout=1.0)
    except (RedisError, OSError, TimeoutError) as exc:
        raise Unavailable(f"Redis is not reachable: {exc.__class__.__name__}") from None
    return json_response({"status": "ready", "rules_version": request.app[LIVE].snapshot.rulebook.version})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


async def openapi(request: web.Request) -> web.Response:
    body = openapi_bytes(request.app[LIVE].snapshot.rulebook)
    return web.Response(body=body, content_type="application/json")


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/v1/decide", decide),
    ("POST", "/v1/events", events),
    ("PUT", "/v1/customers/{customer_id}", put_customer),
    ("PATCH", "/v1/customers/{customer_id}", patch_customer),
    ("GET", "/v1/customers/{customer_id}", get_customer),
    ("DELETE", "/v1/customers/{customer_id}", delete_customer),
    ("GET", "/v1/rules", rules),
    ("POST", "/v1/rules/reload", reload_rules),
    ("GET", "/v1/actions/stats", action_stats),
    ("GET", "/healthz", healthz),
    ("GET", "/readyz", readyz),
    ("GET", "/metrics", metrics),
    ("GET", "/openapi.json", openapi),
]


# ---------------------------------------------------------------------------------------- middleware


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Maps every failure to problem+json; counts and (at debug level) logs every request."""
    start = time.perf_counter()
    try:
        response = await handler(request)
    except NbaError as err:
        response = problem_response(err)
    except web.HTTPException as exc:
        response = problem_response(_from_http(exc))
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("redis unavailable during %s %s: %r", request.method, request.path, exc)
        response = problem_response(Unavailable("storage is unavailable; retry shortly", code="storage_unavailable"))
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        response = problem_response(NbaError("unexpected error; it has been logged"))
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    metrics = request.app[METRICS]
    metrics.child(metrics.requests, name, str(response.status)).inc()
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            orjson.dumps(
                {
                    "method": request.method,
                    "path": request.path,
                    "status": response.status,
                    "ms": round((time.perf_counter() - start) * 1000, 3),
                }
            ).decode()
        )
    return response


def _from_http(exc: web.HTTPException) -> NbaError:
    if exc.status == 404:
        return NotFound("no such endpoint; see /openapi.json")
    if exc.status == 405:
        allow = exc.headers.get("Allow", "")
        return MethodNotAllowed(f"method not allowed here; allowed: {allow}", headers={"Allow": allow})
    if exc.status == 413:
        return PayloadTooLarge("request body too large")
    err = NbaError(exc.reason or "HTTP error")
    err.status, err.code, err.title = exc.status, "http_error", exc.reason or "HTTP error"
    return err
