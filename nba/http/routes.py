"""HTTP transport: decode -> call -> encode, a few lines per route. No decision logic here."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from redis.exceptions import OutOfMemoryError, RedisError

from nba import logs
from nba.access import audit, session
from nba.access.roles import ROLES, Permission, Principal
from nba.access.service import OPEN, is_loopback_name
from nba.board import pages as board
from nba.customers import bulk
from nba.customers.service import Customers
from nba.decision.decider import Decider
from nba.domain import check_id, iso_utc
from nba.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidRequest,
    MethodNotAllowed,
    NbaError,
    NotFound,
    PayloadTooLarge,
    RulesInvalid,
    RulesRejected,
    Unauthorized,
    Unavailable,
)
from nba.evaluation import performance, stats
from nba.http import access, wire
from nba.http import body as bodies
from nba.http.openapi import openapi_bytes
from nba.http.problem import problem_response
from nba.http.requestlog import logged_path
from nba.http.server import ConnectionGuard
from nba.learning.ingest import EventIngest
from nba.learning.learner import Learner
from nba.live import Live
from nba.metrics import Metrics
from nba.outbound import run as outbound_run
from nba.outbound.jobs import Jobs
from nba.rules.diff import diff_sets
from nba.runtime.supervision import Supervision
from nba.store import keys
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
OUTBOUND = web.AppKey("outbound", Jobs)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


async def read_json(request: web.Request, limit: int) -> Any:
    return await bodies.read_json(request, limit, request.app[BODY_LIMITS])


def customer_id(request: web.Request) -> str:
    errors: list[FieldError] = []
    cid = check_id(request.match_info["customer_id"], "customer_id", errors)
    if errors:
        raise InvalidRequest("invalid customer id in the path", errors=errors)
    return cid or ""


# ------------------------------------------------------------------------------------------- routes


P = Permission


async def decide(request: web.Request) -> web.Response:
    app = request.app
    body = await read_json(request, wire.MAX_DECIDE_BODY)
    req = wire.parse_decide(body, app[LIVE].snapshot.rulebook)
    # a preview (explain, or dry_run) is also a marketer's; it is always a dry run for them (below)
    access.check(request, (P.DECIDE, P.EXPLAIN) if req.explain or req.dry_run else (P.DECIDE,), (req.channel,))
    access.check_customers(request, {req.customer_id})
    if not access.principal(request).may(P.DECIDE):  # a preview by a marketer: it must not use up caps
        req = dataclasses.replace(req, dry_run=True)
    start = time.perf_counter()
    decision = await app[DECIDER].decide(req)
    logs.decision_id.set(decision.decision_id)
    metrics = app[METRICS]
    metrics.child(metrics.decision_seconds, req.channel).observe(time.perf_counter() - start)
    return json_response(wire.decision_body(decision))


async def events(request: web.Request) -> web.Response:
    app = request.app
    body = await read_json(request, wire.MAX_EVENTS_BODY)
    batch = wire.parse_events(body, app[LIVE].snapshot.rulebook, app[CLOCK]())
    access.check(request, (P.EVENTS,), tuple({e.channel for e in batch}))
    access.check_customers(request, {e.customer_id for e in batch})
    remember = {c.name: c.remember_anonymous for c in app[LIVE].snapshot.rulebook.channels.values()}
    result = await app[INGEST].ingest(batch, remember)
    return json_response(wire.ingest_body(result), status=202)


async def put_customer(request: web.Request) -> web.Response:
    cid = customer_id(request)
    attrs = wire.parse_attributes(await read_json(request, wire.MAX_CUSTOMER_BODY))
    return json_response(await request.app[CUSTOMERS].replace(cid, attrs))


async def patch_customer(request: web.Request) -> web.Response:
    cid = customer_id(request)
    attrs = wire.parse_attributes(await read_json(request, wire.MAX_CUSTOMER_BODY))
    return json_response(await request.app[CUSTOMERS].merge(cid, attrs))


async def bulk_customers(request: web.Request) -> web.Response:
    """JSON lines of PUT (or PATCH) bodies with their customer ids, as `nba customers import` takes them."""
    merge = wire.parse_bulk_query(request.query)
    body = await bodies.read_typed(request, wire.BULK_TYPES, wire.MAX_BULK_BODY, request.app[BODY_LIMITS])
    text = wire.bulk_lines(body)
    summary, rejected = await bulk.import_pushed(request.app[CUSTOMERS], text, merge=merge, max_line=wire.MAX_BULK_LINE)
    return json_response(wire.bulk_body(summary, rejected))


async def get_customer(request: web.Request) -> web.Response:
    return json_response(await request.app[CUSTOMERS].read(customer_id(request)))


async def delete_customer(request: web.Request) -> web.Response:
    cid = customer_id(request)
    await request.app[CUSTOMERS].erase(cid)
    # after the erasure: a failed audit write answers 503, and the client's retry (an erasure is
    # idempotent) writes it; an audit entry never names an erasure that did not happen
    await request.app[access.ACCESS].audit.erased(access.principal(request), cid)
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
    await request.app[access.ACCESS].audit.record(
        access.principal(request), audit.RULES_RELOAD, result.version, "changed" if result.changed else "unchanged"
    )
    return json_response({"version": result.version, "changed": result.changed})


async def rollback_rules(request: web.Request) -> web.Response:
    """Make the previously published rule set current again, for every process (as `nba rules rollback`)."""
    store = request.app[STORE]
    previous = request.app[LIVE].snapshot.rulebook.version
    version = await store.rollback_rules()
    if version is None:
        raise Conflict("nothing to roll back to: only one rule set was ever published", code="no_previous_rules")
    await request.app[access.ACCESS].audit.record(
        access.principal(request), audit.RULES_ROLLBACK, version, f"from {previous}"
    )
    source = await store.rules_source_version()
    return json_response({"version": version, "previous": previous, "directory_version": source})


async def action_stats(request: web.Request) -> web.Response:
    """Read from the store, not the process's model copy: an operator sees what the learner committed."""
    store = request.app[STORE]
    data = await store.model_data()
    rb = request.app[LIVE].snapshot.rulebook
    return json_response(stats.report(rb, data, await store.event_counts(), time.time()))


async def board_performance(request: web.Request) -> web.Response:
    """The board's offer performance: the learner's hourly counters over a period (evaluation/performance.py)."""
    store = request.app[STORE]
    rb = request.app[LIVE].snapshot.rulebook
    period = wire.parse_performance_query(request.query, rb.channels, request.app[CLOCK]())
    cells = await store.performance(period.start_hour, period.end_hour, by_day=period.step == 24)
    names = {a.id: a.name for a in rb.actions}
    body = performance.report(cells, period, names, await store.rules_changes())
    body["retention"] = {"hour_days": keys.PERF_HOUR_DAYS, "day_days": keys.PERF_DAY_DAYS}
    return json_response(body)


async def board_learning(request: web.Request) -> web.Response:
    """Learning health: how far behind the learner is and how old the model, from Redis (so every process
    answers alike); decisions and errors of this server's processes since they started."""
    store = request.app[STORE]
    now = request.app[CLOCK]()
    backlog = await store.inbox_backlog()
    updated = await store.model_updated_ms()
    data = await store.model_data()
    metrics = request.app[METRICS]
    outcomes = metrics.totals("nba_decisions", "outcome")
    # decisions made: not previews, not repeats of a request_id, not the rounds a conflict ranked again
    decided = sum(n for outcome, n in outcomes.items() if outcome not in ("dry_run", "repeat", "conflict"))
    degraded = outcomes.get("degraded", 0.0)
    errors = {
        "redis": sum(metrics.totals("nba_redis_errors", "op").values()),
        "learner": sum(metrics.totals("nba_learner_errors", "").values()),
        "model_refresh": sum(metrics.totals("nba_model_refresh_errors", "").values()),
        "unreadable_records": sum(metrics.totals("nba_unreadable_records", "record").values()),
    }
    return json_response(
        {
            "model_version": data.version,
            "model_updated_at": iso_utc(updated / 1000, "milliseconds") if updated else None,
            "model_age_seconds": max(0.0, now - updated / 1000) if updated else None,
            "learner_lag_seconds": max(0.0, now - backlog.oldest_ms / 1000) if backlog.oldest_ms else 0.0,
            "inbox_pending": backlog.pending,
            "rules_version": request.app[LIVE].snapshot.rulebook.version,
            "arms": stats.arms_body(data.arms),
            "decisions": int(decided),
            "degraded": int(degraded),
            "degraded_share": degraded / decided if decided else None,
            "errors": errors,
        }
    )


async def rules_versions(request: web.Request) -> web.Response:
    """The published rule sets a rollback can reach, and every change of the current one."""
    store = request.app[STORE]
    history = await store.rules_history()
    changes = await store.rules_changes()
    published: dict[str, int] = {}
    for c in reversed(changes):  # oldest first: the latest time a version became current wins
        published[c.version] = c.at_ms
    current = await store.current_rules_version()
    return json_response(
        {
            "current": current,  # what every process runs within a second (they poll it)
            "running": request.app[LIVE].snapshot.rulebook.version,  # what this one runs now
            "versions": [
                {
                    "version": v,
                    "current": v == current,
                    "published_at": iso_utc(published[v] / 1000, "milliseconds") if v in published else None,
                }
                for v in history
            ],
            "changes": [performance.change_body(c) for c in changes],
        }
    )


async def rules_diff(request: web.Request) -> web.Response:
    before, after = wire.parse_rules_diff_query(request.query)
    store = request.app[STORE]
    sets = []
    for field, version in (("from", before), ("to", after)):
        files = await store.rules_files(version)
        if files is None:
            raise NotFound(
                f"rules version {version} is not kept (only the rollback history is)",
                code="unknown_version",
                errors=[FieldError(field, "not a published version still kept; see GET /v1/rules/versions")],
            )
        sets.append(files)
    return json_response({"from": before, "to": after, "files": diff_sets(sets[0], sets[1])})


async def get_board_session(request: web.Request) -> web.Response:
    """Who the board is signed in as, with the CSRF token its changes carry; 401 when signed out."""
    control = request.app[access.ACCESS]
    if control.open:
        return json_response(_session_body(OPEN, "", open_server=True))
    token = request.cookies.get(session.COOKIE)
    if not token:
        raise Unauthorized("sign in to the board with an API key", code="signed_out")
    who = await control.admit_session(token, None, "GET", request.app[CLOCK]())
    return json_response(_session_body(who, session.csrf_token(await control.board_secret(), token)))


async def sign_in(request: web.Request) -> web.Response:
    """Trade an API key for a session cookie (HttpOnly, SameSite=Strict): the page never holds the key."""
    control = request.app[access.ACCESS]
    if control.open:
        return json_response(_session_body(OPEN, "", open_server=True))
    access.check_board_origin(request)  # nobody is signed in (to the wrong account) from another site
    body = await read_json(request, 4096)
    key_text = body.get("api_key") if isinstance(body, dict) else None
    if not isinstance(key_text, str) or not key_text:
        raise InvalidRequest("invalid sign-in", errors=[FieldError("api_key", "is required: an API key")])
    now = request.app[CLOCK]()
    key = control.authenticate(f"Bearer {key_text}", now)
    if key.role not in session.BOARD_ROLES:
        metrics = request.app[METRICS]
        metrics.child(metrics.access_refused, "board_role").inc()
        roles = ", ".join(sorted(session.BOARD_ROLES))
        raise Forbidden(f"the board is for the roles {roles}; this key's role is {key.role}", code="board_role")
    secret = await control.board_secret()
    token, until = session.issue(secret, key.id, int(now * 1000), key.expires_ms)
    response = json_response(_session_body(key.principal, session.csrf_token(secret, token)))
    response.set_cookie(
        session.COOKIE,
        token,
        max_age=max(1, until // 1000 - int(now)),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=_cookie_secure(request),
    )
    return response


def _cookie_secure(request: web.Request) -> bool:
    """Secure (sent over HTTPS only) unless the board is opened on this machine's loopback: nba serves
    plain HTTP, so anywhere else a TLS proxy stands in front of it, and a cookie that could also travel
    in the clear would carry the key's powers for 12 hours."""
    return request.secure or not is_loopback_name(request.host)


async def sign_out(request: web.Request) -> web.Response:
    """Forget the session cookie (a CSRF token is needed: another site must not sign a person out)."""
    control = request.app[access.ACCESS]
    access.check_board_origin(request)
    token = request.cookies.get(session.COOKIE)
    if token and not control.open:
        # an expired or revoked session is signed out already: only its cookie is cleared
        with contextlib.suppress(Unauthorized):
            await control.admit_session(token, request.headers.get(session.CSRF_HEADER), "DELETE", request.app[CLOCK]())
    response = web.Response(status=204)
    response.del_cookie(session.COOKIE, path="/", samesite="Strict", httponly=True, secure=_cookie_secure(request))
    return response


def _session_body(who: Principal, csrf: str, *, open_server: bool = False) -> dict[str, Any]:
    return {
        "name": who.name,
        "role": who.role,
        "permissions": sorted(p.value for p in ROLES[who.role]),
        "csrf": csrf,
        "open": open_server,
    }


async def export_decisions(request: web.Request) -> web.StreamResponse:
    """The decision log as JSON lines (what `nba log export` writes), streamed."""
    store = request.app[STORE]
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    try:
        async for cid in store.customers_with_decisions():
            records = await store.decision_records(cid)
            if records:
                await response.write(b"".join(orjson.dumps(r) + b"\n" for r in records))
    except (RedisError, OSError, TimeoutError) as exc:
        # the status went out already: cut the stream (the client sees it end unfinished) rather than end it
        # as if the log were whole
        log.warning("decision log export cut off by %r", exc)
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response


async def start_outbound_run(request: web.Request) -> web.Response:
    """Start an outbound run in the background (202); its document says how far it got."""
    body = await read_json(request, wire.MAX_OUTBOUND_BODY)
    req = wire.parse_outbound_run(body, request.app[CLOCK]())
    doc = await request.app[OUTBOUND].start(req, access.principal(request).name)
    response = json_response(doc, status=202)
    response.headers["Location"] = f"/v1/outbound/runs/{doc['run_id']}"
    return response


async def list_outbound_runs(request: web.Request) -> web.Response:
    return json_response({"runs": await request.app[OUTBOUND].list()})


def _run_id(request: web.Request) -> str:
    run_id = request.match_info["run_id"]
    if not wire.RUN_ID.fullmatch(run_id):
        raise InvalidRequest("invalid run id", errors=[FieldError("run_id", "is not a run id (run-...)")])
    return run_id


async def _run_document(request: web.Request) -> dict[str, Any]:
    run_id = _run_id(request)
    doc = await request.app[OUTBOUND].read(run_id)
    if doc is None:
        raise NotFound(f"no outbound run {run_id} (runs are kept 30 days)", code="run_not_found")
    return doc


async def get_outbound_run(request: web.Request) -> web.Response:
    return json_response(await _run_document(request))


async def outbound_selection(request: web.Request) -> web.StreamResponse:
    """The run's selection for lead management: JSON lines (default) or CSV (?format=csv); `include` adds
    profile attributes as they are now (an address), for callers who may read customers."""
    run_id = _run_id(request)
    fmt = request.query.get("format", "jsonl")
    if fmt not in ("jsonl", "csv"):
        raise InvalidRequest("unknown format", errors=[FieldError("format", "must be jsonl or csv")])
    include = tuple(n for n in request.query.get("include", "").split(",") if n)
    if include:
        access.check(request, (P.CUSTOMERS_READ,))
        declared = request.app[LIVE].snapshot.rulebook.attributes
        unknown = [n for n in include if n not in declared]
        if unknown:
            raise InvalidRequest(
                "unknown attribute", errors=[FieldError("include", f"{unknown[0]!r} is not a profile attribute")]
            )
    doc = await _run_document(request)
    if doc["state"] != "done":
        raise Conflict(
            f"run {run_id} is {doc['state']}: its selection is complete once it is done", code="run_not_done"
        )
    if "file" in doc.get("report", {}).get("selection", {}):
        raise Conflict(
            f"run {run_id} ran on the command line: its selection is in its file "
            f"({doc['report']['selection']['file']} where it ran), not here",
            code="selection_in_file",
        )
    store = request.app[STORE]
    ctype = "text/csv" if fmt == "csv" else "application/x-ndjson"
    response = web.StreamResponse(headers={"Content-Type": f"{ctype}; charset=utf-8"})
    await response.prepare(request)
    if fmt == "csv":
        await response.write(outbound_run.csv_text([list(outbound_run.CSV_COLUMNS) + list(include)]))
    async for chunk in store.outbound_selection(run_id):
        lines = [orjson.loads(line) for line in chunk.splitlines() if line]
        if include:
            people = await store.read_customers([x["customer_id"] for x in lines])
            for line, person in zip(lines, people, strict=True):
                attrs = {} if isinstance(person, Exception) else person.attributes or {}
                line.update({name: attrs.get(name) for name in include})
        if fmt == "csv":
            await response.write(outbound_run.csv_text([outbound_run.csv_row(x, include) for x in lines]))
        else:
            await response.write(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    await response.write_eof()
    return response


def _details(request: web.Request) -> bool:
    who = access.caller(request)
    return who is not None and who.may(P.HEALTH_DETAILS)


async def healthz(request: web.Request) -> web.Response:
    """Liveness: fails when this process can no longer serve and a restart of it would help (its embedded
    Redis stays down, a background loop died), not when an external Redis is away (see /readyz)."""
    problems = request.app[SUPERVISION].problems(time.time())
    problems += [
        f"background task {t.get_name()} stopped: {t.exception()!r}"
        for t in request.app[TASKS]
        if t.done() and not t.cancelled()
    ]
    details = _details(request)
    if problems:
        raise Unavailable(
            "this server process can no longer serve; restart it",
            code="unhealthy",
            errors=[FieldError("", p) for p in problems] if details else [],
        )
    return json_response({"status": "ok", "pid": os.getpid()} if details else {"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    details = _details(request)
    try:
        await asyncio.wait_for(request.app[STORE].ping(), timeout=1.0)
    except (RedisError, OSError, TimeoutError) as exc:
        raise Unavailable("Redis is not reachable" + (f": {exc.__class__.__name__}" if details else "")) from None
    if not details:
        return json_response({"status": "ready"})
    return json_response({"status": "ready", "rules_version": request.app[LIVE].snapshot.rulebook.version})


async def metrics(request: web.Request) -> web.Response:
    resp = web.Response(body=request.app[METRICS].exposition())
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


async def list_keys(request: web.Request) -> web.Response:
    keys = await request.app[access.ACCESS].list_keys()
    return json_response({"keys": [k.public() for k in keys]})


async def create_key(request: web.Request) -> web.Response:
    req = wire.parse_key_request(await read_json(request, wire.MAX_DECIDE_BODY))
    ac = request.app[access.ACCESS]
    key, secret = await ac.create_key(req, request.app[LIVE].snapshot.rulebook.channels, access.principal(request))
    signing = {"signing_secret": key.signing} if key.signing else {}
    return json_response({**key.public(), "key": secret, **signing}, status=201)


async def revoke_key(request: web.Request) -> web.Response:
    await request.app[access.ACCESS].revoke_key(request.match_info["key_id"], access.principal(request))
    return web.Response(status=204)


async def read_audit(request: web.Request) -> web.Response:
    q = wire.parse_audit_query(request.query)
    entries = await request.app[access.ACCESS].audit.read(**q)
    return json_response({"entries": [dataclasses.asdict(e) for e in entries]})


async def openapi(request: web.Request) -> web.Response:
    body = openapi_bytes(request.app[LIVE].snapshot.rulebook, PERMISSIONS)
    return web.Response(body=body, content_type="application/json")


# every route with the permissions that admit a caller to it (access/roles.py says which role holds which)
ROUTES: list[tuple[str, str, Handler, tuple[Permission, ...]]] = [
    ("POST", "/v1/decide", decide, (P.DECIDE, P.EXPLAIN)),  # explain alone: only with explain: true
    ("POST", "/v1/events", events, (P.EVENTS,)),
    ("POST", "/v1/customers:bulk", bulk_customers, (P.CUSTOMERS_WRITE,)),
    ("PUT", "/v1/customers/{customer_id}", put_customer, (P.CUSTOMERS_WRITE,)),
    ("PATCH", "/v1/customers/{customer_id}", patch_customer, (P.CUSTOMERS_WRITE,)),
    ("GET", "/v1/customers/{customer_id}", get_customer, (P.CUSTOMERS_READ,)),
    ("DELETE", "/v1/customers/{customer_id}", delete_customer, (P.CUSTOMERS_ERASE,)),
    ("GET", "/v1/rules", rules, (P.RULES_READ,)),
    ("POST", "/v1/rules/reload", reload_rules, (P.RULES_CHANGE,)),
    ("POST", "/v1/rules/rollback", rollback_rules, (P.RULES_CHANGE,)),
    ("GET", "/v1/actions/stats", action_stats, (P.STATS,)),
    ("GET", "/v1/board/performance", board_performance, (P.STATS,)),
    ("GET", "/v1/board/learning", board_learning, (P.STATS, P.HEALTH_DETAILS)),  # the operator watches it too
    ("GET", "/v1/rules/versions", rules_versions, (P.RULES_READ,)),
    ("GET", "/v1/rules/diff", rules_diff, (P.RULES_READ,)),
    ("GET", "/v1/decisions/export", export_decisions, (P.LOGS,)),
    ("GET", "/v1/keys", list_keys, (P.KEYS,)),
    ("POST", "/v1/keys", create_key, (P.KEYS,)),
    ("DELETE", "/v1/keys/{key_id}", revoke_key, (P.KEYS,)),
    ("GET", "/v1/audit", read_audit, (P.AUDIT,)),
    ("POST", "/v1/outbound/runs", start_outbound_run, (P.OUTBOUND_RUN,)),
    ("GET", "/v1/outbound/runs", list_outbound_runs, (P.OUTBOUND_READ,)),
    ("GET", "/v1/outbound/runs/{run_id}", get_outbound_run, (P.OUTBOUND_READ,)),
    ("GET", "/v1/outbound/runs/{run_id}/selection", outbound_selection, (P.OUTBOUND_READ,)),
    ("GET", "/board/session", get_board_session, (P.PUBLIC,)),  # these three check the key or cookie themselves
    ("POST", "/board/session", sign_in, (P.PUBLIC,)),
    ("DELETE", "/board/session", sign_out, (P.PUBLIC,)),
    ("GET", "/healthz", healthz, (P.PUBLIC,)),
    ("GET", "/readyz", readyz, (P.PUBLIC,)),
    ("GET", "/metrics", metrics, (P.METRICS,)),
    ("GET", "/openapi.json", openapi, (P.OPENAPI,)),
    # the board's page holds no data (its APIs check the session): anyone may load it
    ("GET", "/board", board.page, (P.PUBLIC,)),
    ("GET", "/board/", board.page, (P.PUBLIC,)),
    ("GET", "/board/{asset}", board.asset, (P.PUBLIC,)),
]


PERMISSIONS = {(method, path): needs for method, path, _, needs in ROUTES}

# ---------------------------------------------------------------------------------------- middleware


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Maps every failure to problem+json; counts and times every request."""
    start = time.perf_counter()
    try:
        response = await handler(request)
    except NbaError as err:
        response = problem_response(err)
    except web.HTTPException as exc:
        response = problem_response(_from_http(exc))
    except web.RequestPayloadError as exc:  # a body its Content-Encoding does not decode (not gzip after all)
        response = problem_response(
            InvalidRequest(
                "the request body could not be decoded",
                code="body_undecodable",
                errors=[FieldError("body", f"{exc}: check Content-Encoding")],
            )
        )
    except OutOfMemoryError:
        log.error(
            "Redis is full (maxmemory) during %s %s: nothing more can be stored", request.method, logged_path(request)
        )
        response = problem_response(
            Unavailable("storage is full; retry once an operator has added memory", code="storage_full")
        )
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("redis unavailable during %s %s: %r", request.method, logged_path(request), exc)
        response = problem_response(Unavailable("storage is unavailable; retry shortly", code="storage_unavailable"))
    except Exception:
        log.exception("unexpected error in %s %s", request.method, logged_path(request))
        response = problem_response(NbaError("unexpected error; it has been logged"))
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    metrics = request.app[METRICS]
    metrics.child(metrics.requests, name, str(response.status)).inc()
    metrics.child(metrics.request_seconds, name).observe(time.perf_counter() - start)
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
