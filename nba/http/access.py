"""Access control at the door: who calls (key, open server), whether the route's permission allows it,
and browser origins (CORS). Routes name their permission in routes.ROUTES; roles.py says who holds it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from nba import logs
from nba.access import cors, customer_token, session
from nba.access.roles import Permission, Principal, authorize
from nba.access.service import OPEN, AccessControl
from nba.errors import Forbidden
from nba.http.problem import problem_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ACCESS = web.AppKey("access", AccessControl)
# the permissions of each route (any one of them admits; routes refine by channel)
PERMISSIONS: web.AppKey[dict[web.AbstractRoute, tuple[Permission, ...]]] = web.AppKey("permissions")
PRINCIPAL = web.RequestKey("principal", Principal)
Clock = Callable[[], float]
CLOCK: web.AppKey[Clock] = web.AppKey("access_clock")


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def caller(request: web.Request) -> Principal | None:
    """Who calls a public route (None: anonymous on a closed server)."""
    return request.get(PRINCIPAL)


@web.middleware
async def browsers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Preflights of the channel routes, and the header that lets a page read an answer: only for an
    origin the calling key allows (or, for a refusal before a key is known, one some key allows)."""
    if request.path not in cors.ROUTES:
        return await handler(request)
    origin = request.headers.get("Origin")
    if origin is None:
        response = await handler(request)
        response.headers["Vary"] = "Origin"  # a cache must not serve this answer to a page, or the reverse
        return response
    access = request.app[ACCESS]
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        if origin in access.keyring.origins and request.headers["Access-Control-Request-Method"] == "POST":
            return web.Response(status=204, headers=cors.preflight_headers(origin))
        refusal = problem_response(
            Forbidden(f"origin {origin} may not POST here with any API key", code="origin_forbidden")
        )
        refusal.headers["Vary"] = "Origin"
        return refusal
    response = await handler(request)
    who = request.get(PRINCIPAL)
    key = access.key_of(who) if who is not None else None
    if (key is not None and origin in key.origins) or (key is None and origin in access.keyring.origins):
        response.headers.update(cors.allow_headers(origin))
    else:
        response.headers["Vary"] = "Origin"
    return response


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Admit the caller for the matched route (401, 403, 429 otherwise); unmatched paths pass on to
    their 404 or 405."""
    route = request.match_info.route
    needs = request.app[PERMISSIONS].get(route)
    if needs is None:
        return await handler(request)
    access = request.app[ACCESS]
    if needs == (Permission.PUBLIC,):
        who = access.identify(request.headers.get("Authorization"), request.app[CLOCK]())
        if who is not None:
            request[PRINCIPAL] = who
        return await handler(request)
    authorization = request.headers.get("Authorization")
    cookie = request.cookies.get(session.COOKIE)
    origin = request.headers.get("Origin")
    signed_in = authorization is None and bool(cookie) and not access.open  # the board's session
    if signed_in:
        check_board_origin(request)
        who = await access.admit_session(
            cookie or "", request.headers.get(session.CSRF_HEADER), request.method, request.app[CLOCK]()
        )
    else:
        who = access.admit(authorization, request.app[CLOCK]())
    request[PRINCIPAL] = who
    if who is not OPEN:
        logs.key_id.set(who.id)
    if who is OPEN:
        access.check_open_caller(request.host, origin)
    check(request, needs)
    if origin is not None and request.path in cors.ROUTES and not signed_in:
        key = access.key_of(who)
        if key is not None and origin not in key.origins:
            # a page elsewhere using this key: refused before anything happens (a browser would only hide
            # the answer, after the decision had reserved and the events been stored)
            raise Forbidden(f"this key may not be used from pages on {origin}", code="origin_forbidden")
    return await handler(request)


def check_board_origin(request: web.Request) -> None:
    """The board's session serves the board's own pages only: SameSite keeps other sites' requests from
    carrying its cookie, but a sibling subdomain is the same site, though not the same host. (The host
    alone: behind a proxy that ends TLS the page's scheme is not this server's.)"""
    origin = request.headers.get("Origin")
    if origin is not None and origin.partition("://")[2] != request.host:
        metrics = request.app[ACCESS].metrics
        metrics.child(metrics.access_refused, "origin_forbidden").inc()
        raise Forbidden(f"the board's session may not be used from pages on {origin}", code="origin_forbidden")


def check_customers(request: web.Request, customer_ids: set[str]) -> None:
    """A browser key acts only for the customer its caller's token names (access/customer_token.py)."""
    access = request.app[ACCESS]
    key = access.key_of(request[PRINCIPAL])
    if key is None or not key.signing:
        return
    try:
        customer_token.verify(
            request.headers.get(customer_token.HEADER), key.signing, key.id, customer_ids, request.app[CLOCK]()
        )
    except Forbidden:
        access.metrics.child(access.metrics.access_refused, "customer_token").inc()
        raise


def check(request: web.Request, needs: tuple[Permission, ...], channels: tuple[str, ...] = ()) -> None:
    """roles.authorize for the caller of `request`, refusals counted."""
    try:
        authorize(request[PRINCIPAL], needs, channels)
    except Forbidden:
        metrics = request.app[ACCESS].metrics
        metrics.child(metrics.access_refused, "forbidden").inc()
        raise
