"""Every request gets an id (the caller's X-Request-Id, or a new one) that its response, its log lines
and its access-log line carry, so one call can be followed from the channel's logs into nba's."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from nba import logs

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HEADER = "X-Request-Id"
MAX_UNMATCHED = 200  # characters of an unmatched path an access-log line shows
access_log = logging.getLogger(logs.ACCESS_LOGGER)


def logged_path(request: web.Request) -> str:
    """The route's template (`/v1/customers/{customer_id}`): a customer id in a log would name someone
    whom an erasure and the audit trail name only by a keyed hash. A path no route matched is shown as
    sent, cut short, with control characters escaped so it cannot forge a log line."""
    resource = request.match_info.route.resource
    if resource is not None:
        return resource.canonical
    return request.rel_url.path[:MAX_UNMATCHED].encode("unicode_escape").decode("ascii")


@web.middleware
async def request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = time.perf_counter()
    rid = logs.take_request_id(request.headers.get(HEADER))
    logs.request_id.set(rid)
    # each request runs in a context of its own today; set anyway, so that no id can outlive its request
    logs.decision_id.set(None)
    logs.key_id.set(None)
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # what the inner middlewares let through (none do today)
        exc.headers[HEADER] = rid
        raise
    response.headers[HEADER] = rid
    if access_log.isEnabledFor(logging.INFO):
        ms = (time.perf_counter() - start) * 1000.0
        path = logged_path(request)
        access_log.info(
            "%s %s %d %.1fms",
            request.method,
            path,
            response.status,
            ms,
            extra={
                # on the record itself, not left to the handler's filter: whatever handler gets it
                "request_id": rid,
                "decision_id": logs.decision_id.get(),
                "key_id": logs.key_id.get(),
                "fields": {
                    "method": request.method,
                    "path": path,
                    "status": response.status,
                    "duration_ms": round(ms, 3),
                    "remote": request.remote,
                },
            },
        )
    return response
