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
from nba.domain import Decision
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
from nba.evaluation.estimators import lift
from nba.http import body as bodies
from nba.http import wire
from nba.http.openapi import openapi_bytes
from nba.http.problem import problem_response
from nba.http.server import ConnectionGuard
from nba.learning.bandit import ModelState, interval
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
    return json_response(decision_body(decision))


def decision_body(d: Decision) -> dict[str, Any]:
    body: dict[str, Any] = {
        "decision_id": d.decision_id, "customer_id": d.customer_id, "channel": d.channel,
        "actions": [
            {"action_id": a.action_id, "rank": a.rank, "group": a.group, "score": a.score,
             "propensity": a.propensity, "probability": a.probability, "value": a.value,
             "content": a.content, "reason": a.reason}
            for a in d.actions
        ],
        "segments": d.segments, "rules_version": d.rules_version, "model_version": d.model_version,
        "degraded": d.degraded,
    }
    if d.explain is not None:
        body["explain"] = d.explain
    return body


async def events(request: web.Request) -> web.Response:
    app = request.app
    body = await read_json(request, wire.MAX_EVENTS_BODY)
    batch = wire.parse_events(body, app[LIVE].snapshot.rulebook, app[CLOCK]())
    result = await app[INGEST].ingest(batch)
    return json_response({"accepted": result.accepted, "duplicates": result.duplicates,
                          "credited": result.credited, "unattributed": result.unattributed,
                          "erased": result.erased}, status=202)


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
    rb = request.app[LIVE].snapshot.rulebook
    return json_response({
        "version": rb.version,
        "segments_version": rb.segments_version,
        "channels": [{"name": c.name, "direction": c.direction, "default_limit": c.default_limit,
                      "max_limit": c.max_limit, "consent": c.consent} for c in rb.channels.values()],
        "groups": [{"name": g, "weight": w} for g, w in rb.group_weights.items()],
        "segments": [{"name": s.name, "kind": s.kind, "description": s.description} for s in rb.segments],
        "actions": [{"id": a.id, "name": a.name, "group": a.group, "kind": a.kind, "channels": list(a.channels),
                     "value": a.value, "weight": a.weight, "mandatory": a.mandatory, "file": a.file,
                     "content": a.content, "reason": a.reason} for a in rb.actions],
        "learning": {"models": {ch: rb.learning.for_channel(ch).model for ch in rb.channels},
                     "segment_key": list(rb.learning.segment_key), "rewards": dict(rb.learning.rewards)},
    })


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
            errors=[FieldError(f"{p.file}:{p.line}: {p.path}" if p.line else f"{p.file}: {p.path}", p.message)
                    for p in exc.problems]) from None
    return json_response({"version": result.version, "changed": result.changed})


async def action_stats(request: web.Request) -> web.Response:
    """Read from Redis, not the process's model copy: an operator sees what the learner committed.
    `control` compares the accept rates of model-ranked and control-group decisions (the lift)."""
    store = request.app[STORE]
    rb = request.app[LIVE].snapshot.rulebook
    data = await store.model_data()
    model = ModelState.build(data.version, rb.prior_alpha, rb.prior_beta, [a.id for a in rb.actions], rb.learning.keys,
                             data.counts)
    counts = await store.event_counts()
    low, high = interval(model.alpha, model.beta)
    out = []
    for i, a in enumerate(rb.actions):
        out.append({
            "action_id": a.id, "group": a.group,
            "events": {etype: n for (aid, etype), n in sorted(counts.items()) if aid == a.id},
            "segments": [
                {"segment_key": key, "trials": float(model.trials[i, j]), "rewards": float(model.rewards[i, j]),
                 "mean": float(model.mean[i, j]), "interval_95": [float(low[i, j]), float(high[i, j])]}
                for j, key in enumerate(rb.learning.keys)
            ],
        })
    control = rb.learning.control
    arms = {arm: {"shown": n, "rewards": r, "rate": r / n if n else None}
            for arm, (n, r) in sorted(data.arms.items())}
    comparison: dict[str, Any] = {"share": control.share if control else 0.0,
                                  "ordering": control.ordering if control else None, "arms": arms}
    if "model" in data.arms and "control" in data.arms:
        comparison["lift"] = lift(data.arms["model"], data.arms["control"])
    return json_response({"model_version": model.version, "rules_version": rb.version, "actions": out,
                          "control": comparison})


async def healthz(request: web.Request) -> web.Response:
    """Liveness: fails when this process can no longer serve and a restart of it would help (its embedded
    Redis stays down, a background loop died), not when an external Redis is away (see /readyz)."""
    problems = request.app[SUPERVISION].problems(time.time())
    problems += [f"background task {t.get_name()} stopped: {t.exception()!r}" for t in request.app[TASKS]
                 if t.done() and not t.cancelled()]
    if problems:
        raise Unavailable("this server process can no longer serve; restart it", code="unhealthy",
                          errors=[FieldError("", p) for p in problems])
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
        log.debug(orjson.dumps({"method": request.method, "path": request.path, "status": response.status,
                                "ms": round((time.perf_counter() - start) * 1000, 3)}).decode())
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
