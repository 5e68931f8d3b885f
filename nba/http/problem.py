"""RFC 9457 problem+json responses: the one place where errors become HTTP."""

from __future__ import annotations

import orjson
from aiohttp import web

from nba.errors import NbaError

PROBLEM_TYPE = "application/problem+json"


def problem_response(err: NbaError) -> web.Response:
    body = {
        "type": f"urn:nba:problem:{err.code}",
        "title": err.title,
        "status": err.status,
        "detail": err.detail,
        "code": err.code,
        "errors": [{"field": e.field, "message": e.message} for e in err.errors],
    }
    return web.Response(
        status=err.status, body=orjson.dumps(body), content_type=PROBLEM_TYPE, headers=err.headers or None
    )
