"""Access control of one process: the keyring it checks requests against (reloaded from the store when a
key changes anywhere), its rate limits, key management and the audit of it.

Open or closed: a server with no keys is open (every caller may do everything) only when it was started
to allow that, i.e. bound to loopback (and then only for loopback callers) or with `--insecure-open`;
otherwise it refuses every request that needs a role until a key exists. Creating the first key closes
an open server within a second and seals its Redis: it never runs open again.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable

from redis.exceptions import RedisError

from nba.access import apikeys, audit, session
from nba.access.apikeys import ApiKey, KeyRequest, Keyring
from nba.access.audit import Audit
from nba.access.ratelimit import RateLimits
from nba.access.roles import Principal, Role
from nba.concurrency import stop_if_cancelled
from nba.errors import Forbidden, NotFound, TooManyRequests, Unauthorized
from nba.metrics import Metrics
from nba.store.contract import Storage

log = logging.getLogger(__name__)
ACCESS_POLL_SECONDS = 0.5  # a revoked key is refused by every process within about this (plus a request)
USED_FLUSH_SECONDS = 5.0  # how often a process writes when its keys were last used
# the caller of an open server (no keys, on loopback or --insecure-open): may do everything
BOARD_SECRET_SECONDS = 5.0
OPEN = Principal("-", "anonymous (open server)", Role.ADMIN)


def is_loopback_name(host: str) -> bool:
    """`host` (a Host header: name or address, perhaps with a port) names this machine's loopback."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    if name in ("localhost", "localhost.") or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class AccessControl:
    def __init__(
        self,
        store: Storage,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        *,
        open_without_keys: bool = True,
        loopback_callers_only: bool = True,
        workers: int = 1,
        announce: bool = True,
    ):
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.open_without_keys = open_without_keys
        # open on loopback: only callers that name a loopback host (no DNS rebinding) from no page or a
        # loopback page (no cross-site request from a page the browser of this machine has open)
        self.loopback_callers_only = loopback_callers_only
        self.keyring = Keyring()
        self.version: str | None = None  # of the keys in the keyring; None: not read yet
        self.sealed = False  # a key was ever created here: never open again
        self.limits = RateLimits(workers)
        self.audit = Audit(store, clock)
        self._used: dict[str, int] = {}  # key id -> last use (ms) not written yet
        self._flushed_at = time.monotonic()
        self._said: bool | None = None  # the mode last logged
        self._announce = announce  # a server says whether it is open; `nba keys` has nothing to say
        self._board_secret: bytes | None = None
        self._board_secret_read = 0.0  # monotonic time it was last read

    @property
    def open(self) -> bool:
        return self.open_without_keys and not self.sealed and not self.keyring

    def admit(self, authorization: str | None, now: float) -> Principal:
        """Who calls: the key `authorization` carries, checked and counted against its rate; OPEN when the
        server is open. Unauthorized, TooManyRequests."""
        if self.open:
            return OPEN
        return self._within_rate(self.authenticate(authorization, now), now)

    def authenticate(self, authorization: str | None, now: float) -> ApiKey:
        """The key `authorization` carries (Unauthorized otherwise, counted as every refusal is: a scan
        for keys shows on the dashboard)."""
        try:
            return self.keyring.authenticate(authorization, int(now * 1000))
        except Unauthorized as exc:
            self.metrics.child(self.metrics.access_refused, exc.code).inc()
            raise

    async def admit_session(self, token: str, csrf: str | None, method: str, now: float) -> Principal:
        """Who calls with a board session cookie (access/session.py): the key it was issued for, still
        valid, with the role the board admits and its rate; a change (not GET) needs the CSRF token.
        Unauthorized, Forbidden, TooManyRequests."""
        secret = await self.board_secret()
        try:
            key_id = session.verify(secret, token, int(now * 1000))
            key = self.keyring.keys.get(key_id)
            if key is None or key.expired(int(now * 1000)):
                raise Unauthorized("the key of this board session was revoked or expired", code="signed_out")
        except Unauthorized as exc:
            self.metrics.child(self.metrics.access_refused, exc.code).inc()
            raise
        if method not in session.SAFE_METHODS and not hmac.compare_digest(
            session.csrf_token(secret, token), csrf or ""
        ):
            self.metrics.child(self.metrics.access_refused, "csrf").inc()
            raise Forbidden(
                f"a change made with the board's session needs its {session.CSRF_HEADER} header", code="csrf"
            )
        return self._within_rate(key, now)

    def _within_rate(self, key: ApiKey, now: float) -> Principal:
        wait = self.limits.check(key.id, key.rate, now)
        if wait:
            self.metrics.child(self.metrics.access_refused, "rate_limited").inc()
            raise TooManyRequests(f"key {key.id} is limited to {key.rate:g} requests per second", retry_after=wait)
        self._used[key.id] = int(now * 1000)
        return key.principal

    async def board_secret(self) -> bytes:
        """Read again every BOARD_SECRET_SECONDS: an operator ends every board session by deleting it
        (docs/access.md), and a Redis restored without it gets a new one all processes then share."""
        at = time.monotonic()
        if self._board_secret is None or at - self._board_secret_read >= BOARD_SECRET_SECONDS:
            self._board_secret = await self.store.board_secret()
            self._board_secret_read = at
        return self._board_secret

    def check_open_caller(self, host: str, origin: str | None) -> None:
        """Forbidden when an open server on loopback is called through another host name, or from a page
        that is not on this machine."""
        if not self.loopback_callers_only:
            return
        if not is_loopback_name(host):
            raise Forbidden(
                f"this server has no API keys and answers only requests to a loopback address, not {host!r}",
                code="open_server_host",
            )
        if origin is not None and not is_loopback_name(origin.partition("://")[2]):
            raise Forbidden(
                f"this server has no API keys: pages on {origin} may not call it (create a key with --origin)",
                code="origin_forbidden",
            )

    def identify(self, authorization: str | None, now: float) -> Principal | None:
        """Who calls a public route: a valid key's principal, OPEN on an open server, else None (a public
        route answers anyone, with details only for those allowed)."""
        if self.open:
            return OPEN
        if not authorization:
            return None
        try:
            return self.keyring.authenticate(authorization, int(now * 1000)).principal
        except Unauthorized:
            return None

    def key_of(self, principal: Principal) -> ApiKey | None:
        return self.keyring.keys.get(principal.id)

    # ------------------------------------------------------------------------------- keeping current

    async def refresh(self, *, force: bool = False) -> bool:
        """Reload the keys when their version moved; True when the keyring changed."""
        if not force and self.version is not None and await self.store.access_version() == self.version:
            return False
        version, records, used, sealed = await self.store.read_keys()
        keys: dict[str, ApiKey] = {}
        for key_id, raw in records.items():
            try:
                keys[key_id] = ApiKey.from_json(raw, used.get(key_id))
            except ValueError:
                self.store.unreadable("api_key", key_id, raw)
        self.keyring, self.version, self.sealed = Keyring(keys), version, sealed
        self.limits.forget_except(set(keys))
        self.metrics.api_keys.set(len(keys))
        self._say_mode()
        return True

    def _say_mode(self) -> None:
        mode = self.open
        if mode == self._said or not self._announce:
            return
        self._said = mode
        if mode:
            log.warning(
                "no API keys: this server is OPEN, every caller may use every route. Fine on a laptop; "
                "before others can reach it, create a key: nba keys create --name NAME --role admin"
            )
        elif self.keyring:
            log.info("%d API key(s): requests need Authorization: Bearer <key>", len(self.keyring))
        else:
            log.warning("no API keys: every request that needs a role is refused (create one: nba keys create)")

    async def flush_used(self) -> None:
        used, self._used = self._used, {}
        try:
            await self.store.touch_keys(used)
        except (RedisError, OSError):
            for k, v in used.items():  # next time
                self._used[k] = max(v, self._used.get(k, 0))
            raise

    async def run(self) -> None:
        """Follow key changes (ACCESS_POLL_SECONDS) and write when keys were used (USED_FLUSH_SECONDS)."""
        while True:
            try:
                await self.refresh()
                if time.monotonic() - self._flushed_at >= USED_FLUSH_SECONDS:
                    self._flushed_at = time.monotonic()
                    await self.flush_used()
            except (RedisError, OSError, TimeoutError) as exc:
                # the keys in memory stay in force: a Redis outage neither opens nor closes the server
                stop_if_cancelled()
                log.debug("access refresh failed: %r", exc)
            await asyncio.sleep(ACCESS_POLL_SECONDS)

    # ------------------------------------------------------------------------------- managing keys

    async def create_key(self, req: KeyRequest, channels: Iterable[str], who: Principal) -> tuple[ApiKey, str]:
        key, secret = apikeys.create(req, channels, int(self.clock() * 1000))
        await self.store.save_key(key.id, key.to_json())
        await self.audit.record(who, audit.KEY_CREATE, key.id, f"name={key.name} role={key.role}")
        await self.refresh()
        return key, secret

    async def revoke_key(self, key_id: str, who: Principal) -> None:
        if not await self.store.revoke_key(key_id):
            raise NotFound(f"no API key {key_id}", code="key_not_found")
        await self.audit.record(who, audit.KEY_REVOKE, key_id)
        await self.refresh()

    async def list_keys(self) -> list[ApiKey]:
        await self.refresh(force=True)
        return sorted(self.keyring.keys.values(), key=lambda k: k.created_ms)
