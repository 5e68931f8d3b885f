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
access_log = logging.getLogger(logs.ACCESS_LOGGER)


@web.middleware
async def request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = time.perf_counter()
    rid = logs.take_request_id(request.headers.get(HEADER))
    logs.request_id.set(rid)
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # what the inner middlewares let through (none do today)
        exc.headers[HEADER] = rid
        raise
    response.headers[HEADER] = rid
    if access_log.isEnabledFor(logging.INFO):
        ms = (time.perf_counter() - start) * 1000.0
        access_log.info(
            "%s %s %d %.1fms",
            request.method,
            request.rel_url.path,
            response.status,
            ms,
            extra={
                # on the record itself, not left to the handler's filter: whatever handler gets it
                "request_id": rid,
                "decision_id": logs.decision_id.get(),
                "key_id": logs.key_id.get(),
                "fields": {
                    "method": request.method,
                    "path": request.rel_url.path,
                    "status": response.status,
                    "duration_ms": round(ms, 3),
                    "remote": request.remote,
                },
            },
        )
    return response
