"""Browser access (CORS) for the channel routes: pages on the origins a key allows may call decide and
events with it. Origins are exact (scheme, host, port), never a wildcard, and no cookies are involved:
the key travels in the Authorization header, so Access-Control-Allow-Credentials is never sent."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

ROUTES = frozenset({"/v1/decide", "/v1/events"})
MAX_AGE = 600  # seconds a browser may reuse a preflight answer
ALLOW_HEADERS = "Authorization, Content-Type, Nba-Customer-Token, X-Request-Id"
_HOST = re.compile(r"[a-z0-9.\-]+|[0-9a-f:.]+")  # a name or IPv4, or IPv6 (urlsplit drops its brackets)


def normalise_origin(text: str) -> str | None:
    """`scheme://host[:port]` in the form browsers send in `Origin` (lower case, default port dropped),
    or None when `text` is not such an origin (a path, a wildcard, another scheme...)."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not _HOST.fullmatch(host or "-"):
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        return None
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def allow_headers(origin: str) -> dict[str, str]:
    """The headers that let a page on `origin` read the answer (and, on a 429 or 503, when to retry, and
    the request's id for its own logs)."""
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": "Retry-After, X-Request-Id",
        "Vary": "Origin",
    }


def preflight_headers(origin: str) -> dict[str, str]:
    return {
        **allow_headers(origin),
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": ALLOW_HEADERS,
        "Access-Control-Max-Age": str(MAX_AGE),
    }
