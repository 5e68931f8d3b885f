"""API keys: a random secret shown once, kept only as a hash, and the in-memory keyring a process checks
requests against.

A key reads `nba_<id>_<secret>`: the id (public, 12 hex digits) finds the record, the secret (256 random
bits) proves possession. Records hold SHA-256 of the whole key. A slow password hash would add
milliseconds to every request and buy nothing here: a 256-bit random secret cannot be guessed from its
hash, unlike a password. The comparison of hashes runs in constant time (hmac.compare_digest)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from nba.access import cors
from nba.access.roles import Principal, Role
from nba.errors import FieldError, InvalidRequest, Unauthorized

PREFIX = "nba"
ID_RE = re.compile(r"[0-9a-f]{12}")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._:@+\-]{0,63}")
DEFAULT_RATE = 1000.0  # requests per second per key, all processes together (ratelimit.py)
MAX_RATE = 1_000_000.0
MAX_LIFETIME_MS = 10 * 366 * 86_400_000  # an expiry further off is a typo (and past what dates can show)


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    role: Role
    hash: str  # hex SHA-256 of the whole key
    created_ms: int
    expires_ms: int | None = None
    channels: tuple[str, ...] = ()  # channel role: the channels it may decide and send events for
    origins: tuple[str, ...] = ()  # web pages (scheme://host[:port]) that may call with it (CORS)
    rate: float = DEFAULT_RATE  # requests per second; 0: unlimited
    # a browser key's secret for customer tokens (customer_token.py); '' when none is needed
    signing: str = ""
    last_used_ms: int | None = field(default=None, compare=False)

    @property
    def principal(self) -> Principal:
        return Principal(self.id, self.name, self.role, self.channels)

    def expired(self, now_ms: int) -> bool:
        return self.expires_ms is not None and now_ms >= self.expires_ms

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "id": self.id,
                "name": self.name,
                "role": str(self.role),
                "hash": self.hash,
                "created_ms": self.created_ms,
                "expires_ms": self.expires_ms,
                "channels": list(self.channels),
                "origins": list(self.origins),
                "rate": self.rate,
                "signing": self.signing,
            }
        )

    def public(self) -> dict[str, Any]:
        """What listing a key shows: everything but its hash."""
        return {
            "id": self.id,
            "name": self.name,
            "role": str(self.role),
            "channels": list(self.channels),
            "origins": list(self.origins),
            "rate": self.rate,
            "customer_tokens": bool(self.signing),
            "created": _iso(self.created_ms),
            "expires": _iso(self.expires_ms),
            "last_used": _iso(self.last_used_ms),
        }

    @staticmethod
    def from_json(raw: bytes, last_used_ms: int | None = None) -> ApiKey:
        """ValueError when `raw` is not a record nba wrote."""
        d = orjson.loads(raw)
        try:
            return ApiKey(
                id=_str(d["id"]),
                name=_str(d["name"]),
                role=Role(d["role"]),
                hash=_str(d["hash"]),
                created_ms=int(d["created_ms"]),
                expires_ms=None if d.get("expires_ms") is None else int(d["expires_ms"]),
                channels=tuple(_str(c) for c in d.get("channels", [])),
                origins=tuple(_str(o) for o in d.get("origins", [])),
                rate=float(d.get("rate", DEFAULT_RATE)),
                signing=_str(d.get("signing", "")),
                last_used_ms=last_used_ms,
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not an API key record: {exc!r}") from None


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError("expected a string")
    return v


def _iso(ms: int | None) -> str | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyRequest:
    """A key to create, as `nba keys create` and POST /v1/keys ask for it (validated by `check`)."""

    name: str
    role: str
    channels: tuple[str, ...] = ()
    origins: tuple[str, ...] = ()
    expires: str | None = None  # a duration from now (90d, 12h) or an ISO 8601 date or time
    rate: float = DEFAULT_RATE
    # a browser key (with origins) acts only for the customer of a token the shop's server signed, unless
    # this says that any page may name any customer id (customer_token.py)
    unsigned_customers: bool = False


def create(req: KeyRequest, known_channels: Iterable[str], now_ms: int) -> tuple[ApiKey, str]:
    """A new key record and its secret (shown once, stored nowhere). InvalidRequest naming every field
    that is wrong."""
    errors: list[FieldError] = []
    if not NAME_RE.fullmatch(req.name):
        errors.append(FieldError("name", "1 to 64 letters, digits, spaces and . _ : @ + -, first a letter or digit"))
    role: Role | None = None
    try:
        role = Role(req.role)
    except ValueError:
        errors.append(FieldError("role", f"must be one of {', '.join(r.value for r in Role)}"))
    known = set(known_channels)
    for c in req.channels:
        if c not in known:
            errors.append(FieldError("channels", f"unknown channel {c!r}; one of {', '.join(sorted(known))}"))
    if role is Role.CHANNEL and not req.channels:
        errors.append(FieldError("channels", "a channel key names the channel(s) it is for"))
    if role is not None and role is not Role.CHANNEL and req.channels:
        errors.append(FieldError("channels", "only channel keys are bound to channels"))
    origins = []
    for o in req.origins:
        norm = cors.normalise_origin(o)
        if norm is None:
            errors.append(FieldError("origins", f"{o!r} is not an origin like https://shop.example.com[:port]"))
        else:
            origins.append(norm)
    expires_ms = None
    if req.expires is not None:
        expires_ms = _expiry(req.expires, now_ms)
        if expires_ms is None or not now_ms < expires_ms <= now_ms + MAX_LIFETIME_MS:
            errors.append(
                FieldError("expires", "a duration (90d, 12h, 30m) or an ISO 8601 date or time, within 10 years")
            )
    if req.unsigned_customers and not req.origins:
        errors.append(FieldError("unsigned_customers", "only for keys with origins (browser keys)"))
    if not 0 <= req.rate <= MAX_RATE:
        errors.append(FieldError("rate", f"requests per second from 0 (unlimited) to {MAX_RATE:.0f}"))
    if errors or role is None:
        raise InvalidRequest("the key cannot be created", errors=errors)
    key_id = secrets.token_hex(6)
    secret = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    record = ApiKey(
        key_id,
        req.name,
        role,
        digest(secret),
        now_ms,
        expires_ms,
        tuple(dict.fromkeys(req.channels)),
        tuple(dict.fromkeys(origins)),
        req.rate,
        secrets.token_urlsafe(32) if origins and not req.unsigned_customers else "",
    )
    return record, secret


_DURATION = re.compile(r"(\d+)([dhm])")
_UNIT = {"d": 86400, "h": 3600, "m": 60}


def _expiry(text: str, now_ms: int) -> int | None:
    m = _DURATION.fullmatch(text.strip())
    if m:
        return now_ms + min(int(m.group(1)), 10**7) * _UNIT[m.group(2)] * 1000
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if when.year >= 9999:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


class Keyring:
    """The keys one process knows (refreshed from the store by access/service.py), by id."""

    def __init__(self, keys: Mapping[str, ApiKey] | None = None):
        self.keys: dict[str, ApiKey] = dict(keys or {})
        # every origin some key allows: a browser's preflight carries no key, so it is answered for these
        self.origins = frozenset(o for k in self.keys.values() for o in k.origins)

    def __len__(self) -> int:
        return len(self.keys)

    def authenticate(self, authorization: str | None, now_ms: int) -> ApiKey:
        """The key an `Authorization` header carries; Unauthorized when it has none, or one that is
        unknown, revoked or expired."""
        if not authorization:
            raise Unauthorized(
                "this server needs an API key: send Authorization: Bearer <key> (docs/access.md)", code="missing_key"
            )
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("the Authorization header must read: Bearer <key>", code="missing_key")
        parts = token.split("_", 2)
        record = self.keys.get(parts[1]) if len(parts) == 3 and parts[0] == PREFIX else None
        # compared in constant time whether or not the id is known (an id is not a secret, but the
        # comparison should not tell which part was wrong)
        expected = record.hash if record is not None else "0" * 64
        if not hmac.compare_digest(digest(token), expected) or record is None:
            raise Unauthorized("the API key is not valid (unknown, revoked or mistyped)", code="invalid_key")
        if record.expired(now_ms):
            raise Unauthorized(f"the API key {record.id} expired at {_iso(record.expires_ms)}", code="invalid_key")
        return record
