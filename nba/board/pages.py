"""The board's page and its assets, served from the package (no build step, nothing from elsewhere).

The page holds no data: it reads the JSON APIs with the board's session cookie, which check the caller.
So these routes are public, and what they guard against is the browser being turned on the page: a
strict Content-Security-Policy (only this origin's script and style, nothing inline, no framing) and no
content-type sniffing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from nba.errors import FieldError, NotFound

STATIC = Path(__file__).resolve().parent / "static"
TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
# connect-src 'self': the page's fetches go to this server only; no inline script or style anywhere
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # the URLs carry no version: a browser asks again each time and gets 304 while the ETag holds
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def _load() -> dict[str, Asset]:
    """Every file of static/ by name, read once: the set of names is the whole allow-list (no path from
    the request ever reaches the file system)."""
    assets = {}
    for path in sorted(STATIC.iterdir()):
        if path.is_file() and path.suffix in TYPES:
            body = path.read_bytes()
            assets[path.name] = Asset(body, TYPES[path.suffix], '"' + hashlib.sha256(body).hexdigest()[:20] + '"')
    return assets


ASSETS = _load()


def _serve(request: web.Request, name: str) -> web.Response:
    asset = ASSETS.get(name)
    if asset is None:
        raise NotFound(f"no board asset {name[:64]!r}", errors=[FieldError("asset", f"one of {', '.join(ASSETS)}")])
    headers = {**HEADERS, "ETag": asset.etag}
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, content_type=asset.content_type, charset="utf-8", headers=headers)


async def page(request: web.Request) -> web.Response:
    return _serve(request, "index.html")


async def asset(request: web.Request) -> web.Response:
    return _serve(request, request.match_info["asset"])
