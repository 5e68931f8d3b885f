"""The board's sign-in: a person gives an API key once and the browser keeps a session cookie instead.

The cookie never holds the key. It holds the key's id and an expiry, signed with a secret every process
shares (Storage.board_secret), so any process admits it and a revoked or expired key ends its sessions
within a second (the keyring is reloaded). It is HttpOnly (a script on the page cannot read it) and
SameSite=Strict (a browser does not send it with a request another site starts). A request it admits
that changes something must also carry the session's CSRF token in a header, which only a page of the
board's own origin can read (from GET /board/session) and set: defence in depth for browsers that ignore
SameSite and for a sibling subdomain, which counts as the same site.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from nba.access.roles import Role
from nba.errors import Unauthorized

COOKIE = "nba_board"
CSRF_HEADER = "X-CSRF-Token"
SESSION_SECONDS = 12 * 3600  # a working day; signing in again takes one key paste
# the board is for people who steer; channel and CRM keys belong to systems
BOARD_ROLES = frozenset({Role.MARKETER, Role.ANALYST, Role.OPERATOR, Role.ADMIN})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_VERSION = "s1"


def _mac(secret: bytes, text: str) -> str:
    digest = hmac.new(secret, text.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue(secret: bytes, key_id: str, now_ms: int, key_expires_ms: int | None) -> tuple[str, int]:
    """A session token for the key and when it expires (epoch ms): SESSION_SECONDS, or the key's own
    expiry if sooner."""
    until = now_ms + SESSION_SECONDS * 1000
    if key_expires_ms is not None:
        until = min(until, key_expires_ms)
    body = f"{_VERSION}.{key_id}.{until}"
    return f"{body}.{_mac(secret, body)}", until


def verify(secret: bytes, token: str, now_ms: int) -> str:
    """The key id a session token names; Unauthorized when it is not one nba signed, or has expired."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != _VERSION or not parts[2].isdigit():
        raise Unauthorized("the board session is not valid: sign in again", code="signed_out")
    body = ".".join(parts[:3])
    if not hmac.compare_digest(_mac(secret, body), parts[3]):
        raise Unauthorized("the board session is not valid: sign in again", code="signed_out")
    if now_ms >= int(parts[2]):
        raise Unauthorized("the board session has expired: sign in again", code="signed_out")
    return parts[1]


def csrf_token(secret: bytes, token: str) -> str:
    """The token a state-changing request admitted by this session must carry in CSRF_HEADER."""
    return _mac(secret, f"csrf.{token}")
