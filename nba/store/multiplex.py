"""One Redis connection shared by every concurrent request of a process, pipelined automatically.

redis-py's asyncio client checks a connection out of a pool for every command: a decision under load
paid for the checkout, a health check, a timeout context and a retry wrapper per command, and held a
socket while it waited, so hundreds of concurrent decisions meant hundreds of sockets and one write and
one read system call each (and "Too many connections" at the pool's limit). Redis answers the commands
of one connection in order, so one connection can carry them all: each command is queued with a future,
everything queued in one event-loop iteration leaves in one write, and replies resolve the futures in
order (hiredis encodes and parses). A caller that stops waiting (a decision past its deadline) is
harmless: its reply is read and dropped, the order is kept.

Used for the hot path (the customer scripts of decide and events, the inbox); the rest of the store
keeps redis-py, whose API is richer and whose cost does not matter there.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Any

import hiredis
from redis.asyncio.connection import ConnectionPool, SSLConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, OutOfMemoryError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


class ReplicaWaitError(RedisError):
    """A write Redis applied but fewer replicas than required confirmed within the wait (NBA_DURABILITY=
    replica): it may be lost if that primary fails, so it is not acknowledged; re-sending it is safe."""


def _error(reply: hiredis.ReplyError) -> ResponseError:
    """The error redis-py would raise for this reply (callers handle NOSCRIPT and a full Redis)."""
    text = str(reply)
    if text.startswith("NOSCRIPT"):
        return NoScriptError(text)
    if text.startswith("OOM"):
        return OutOfMemoryError(text)
    return ResponseError(text)


_Held = tuple["asyncio.Future[Any]", "asyncio.Future[Any]"]  # a write's reply, and its caller's answer


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: Multiplexer, timeout: float):
        self.owner = owner
        self.timeout = timeout
        self.loop = asyncio.get_running_loop()
        self.reader = hiredis.Reader(replyError=hiredis.ReplyError)
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.sent_at: deque[float] = deque()
        self.out: list[bytes] = []
        self.closed = False
        self.last_rx = self.loop.time()
        self.watchdog: asyncio.TimerHandle | None = None
        self.tick_due = 0.0
        # NBA_DURABILITY=replica: the replies of one write, held until the WAIT that follows it answers
        self.held: list[_Held] = []
        self.confirming = False  # a WAIT is out

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, data: bytes, confirmed: bool = True) -> asyncio.Future[Any]:
        """Queue one packed command; its reply. With `owner.replicas` set, a `confirmed` command's reply
        waits for the WAIT that follows its write (a connection's AUTH and SELECT do not)."""
        if self.closed:
            raise RedisConnectionError("connection to Redis lost")
        if not self.out:  # the first command of this loop iteration: flush once the iteration's are queued
            self.loop.call_soon(self._flush)
        fut = self._queue(data)
        if self.owner.replicas and confirmed:
            caller: asyncio.Future[Any] = self.loop.create_future()
            self.held.append((fut, caller))
            return caller
        return fut

    def _queue(self, data: bytes) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = self.loop.create_future()
        self.out.append(data)
        self.waiting.append(fut)
        now = self.loop.time()
        self.sent_at.append(now)
        if self.watchdog is None:
            self._arm(now)
        return fut

    def _arm(self, now: float) -> None:
        self.tick_due = now + self.timeout / 2
        self.watchdog = self.loop.call_at(self.tick_due, self._tick)

    def _tick(self) -> None:
        """Fail the connection when its oldest command has waited `timeout` with nothing received since.
        A tick that comes late means this process, not Redis, was stuck (a long computation, a VM pause):
        replies may be sitting unread in the socket, so it only looks again half a timeout later."""
        self.watchdog = None
        if not self.waiting or self.closed:
            return
        now = self.loop.time()
        late = now - self.tick_due > self.timeout / 4
        if not late and now - self.sent_at[0] > self.timeout and now - self.last_rx > self.timeout:
            self.fail(RedisTimeoutError(f"no reply from Redis within {self.timeout:.3f} s"))
            return
        self._arm(now)

    def _flush(self) -> None:
        if self.held and not self.closed and not self.confirming:
            # one WAIT after everything written so far: Redis answers it once `replicas` replicas have
            # everything this connection wrote, so it confirms the whole group at once. Only one is out
            # at a time: Redis holds the connection's later commands until a WAIT answers (up to its
            # timeout while no replica is there), so a WAIT per write would queue timeouts end to end;
            # writes sent meanwhile are confirmed together by the next one
            group, self.held = self.held, []
            owner = self.owner
            wait: tuple[Any, ...] = ("WAIT", owner.replicas, owner.replica_wait_ms)
            confirm = self._queue(hiredis.pack_command(wait))
            self.confirming = True
            confirm.add_done_callback(lambda f: self._confirmed(group, f))
        if self.out and self.transport is not None and not self.closed:
            self.transport.write(b"".join(self.out))
        self.out.clear()

    def _confirmed(self, group: list[_Held], confirm: asyncio.Future[Any]) -> None:
        self.confirming = False
        _release(group, confirm, self.owner.replicas)
        if self.held and not self.closed and not self.out:
            self.loop.call_soon(self._flush)

    def data_received(self, data: bytes) -> None:
        self.last_rx = self.loop.time()
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            if not self.waiting:  # a reply nobody asked for: the connection is out of step, start over
                self.fail(RedisConnectionError("unexpected reply from Redis"))
                return
            fut = self.waiting.popleft()
            self.sent_at.popleft()
            if fut.done():  # its caller stopped waiting
                continue
            if isinstance(reply, hiredis.ReplyError):
                fut.set_exception(_error(reply))
            else:
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"connection to Redis lost: {exc!r}" if exc else "connection to Redis closed"))

    def fail(self, exc: Exception) -> None:
        self.closed = True
        self.out.clear()
        for _, caller in self.held:  # queued but never sent
            if not caller.done():
                caller.set_exception(exc)
        self.held.clear()
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        self.sent_at.clear()
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(exc)
        if self.transport is not None:
            self.transport.close()
        self.owner._lost(self)


def _release(group: list[_Held], confirm: asyncio.Future[Any], n: int) -> None:
    """Answer the callers of one write group once its WAIT has answered."""
    failure: BaseException | None = confirm.exception() if not confirm.cancelled() else RedisConnectionError("closed")
    if failure is None and confirm.result() < n:
        failure = ReplicaWaitError(
            f"written, but confirmed by {confirm.result()} of the {n} replica(s) required (NBA_DURABILITY=replica)"
        )
    for reply, caller in group:
        # replies come in order, so each reply of the group is in before its WAIT's
        error = reply.exception() if reply.done() else RedisConnectionError("reply missing")
        if caller.done():
            continue
        if error is not None:
            caller.set_exception(error)
        elif failure is not None:
            caller.set_exception(failure)
        else:
            caller.set_result(reply.result())


def tls_context(pool: ConnectionPool) -> ssl.SSLContext | None:
    """The TLS context redis-py's own connections of `pool` use, built by redis-py from the URL's settings
    (ssl_ca_certs, ssl_cert_reqs, ssl_certfile, ssl_check_hostname...): a private CA or a client
    certificate must work for the hot path exactly as for the rest of the store. None without TLS."""
    return tls_context_of(pool.connection_class, pool.connection_kwargs)


def tls_context_of(connection_class: type, kwargs: dict[str, Any]) -> ssl.SSLContext | None:
    """The same from a connection class and its arguments (a Redis Cluster client keeps them so)."""
    if not issubclass(connection_class, SSLConnection):
        return None
    connection = connection_class(**kwargs)  # an object only: nothing connects yet
    return connection.ssl_context.get()


@dataclass(frozen=True)
class Endpoint:
    """Where a connection goes and how it logs in."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None  # a unix socket instead of host and port
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None


class Multiplexer:
    """`await mux.execute("EVALSHA", sha, 2, k1, k2, ...)`: connects on first use and after a loss.
    When Redis sends nothing for `timeout` while a command waits, every waiting call fails and the
    connection is reset (Redis is stuck: every call behind it would wait too). Callers with a tighter
    budget (decide's deadline) stop waiting on their own."""

    def __init__(self, endpoint: Endpoint, timeout: float = 1.0, *, replicas: int = 0):
        self.endpoint = endpoint
        self.timeout = timeout
        # NBA_DURABILITY=replica: every reply waits until this many replicas have the write (WAIT), at most
        # half the timeout (then the write fails with ReplicaWaitError)
        self.replicas = replicas
        self.replica_wait_ms = max(1, int(timeout * 500))
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None

    @classmethod
    def like(cls, pool: ConnectionPool) -> Multiplexer:
        """Same server, database, credentials and TLS settings as a redis-py connection pool's."""
        kw = pool.connection_kwargs
        return cls(
            Endpoint(
                host=kw.get("host", "127.0.0.1"),
                port=int(kw.get("port", 6379)),
                path=kw.get("path"),
                db=int(kw.get("db", 0) or 0),
                username=kw.get("username"),
                password=kw.get("password"),
                tls=tls_context(pool),
            ),
            timeout=float(kw.get("socket_timeout") or 5.0),
        )

    def blocking(self, seconds: float) -> Multiplexer:
        """A connection of its own to the same server, for blocking commands (XREAD BLOCK) that wait up to
        `seconds` by design: that is added to its timeout, and one blocked carries nothing else."""
        return Multiplexer(self.endpoint, timeout=self.timeout + seconds)

    def confirmed(self, replicas: int) -> Multiplexer:
        """A connection of its own to the same server whose replies wait for `replicas` replicas: one
        WAIT holds up its whole connection, so it carries only the writes that need it."""
        return Multiplexer(self.endpoint, timeout=self.timeout, replicas=replicas)

    async def execute(self, *args: Any) -> Any:
        proto = self._proto if self._proto is not None and not self._proto.closed else await self._connect()
        return await proto.send(hiredis.pack_command(args))

    async def execute_many(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Many commands in one write: their replies or errors, in order. A future each and no task (a
        bulk import sends thousands a second; a task per command cost more than packing it)."""
        proto = self._proto if self._proto is not None and not self._proto.closed else await self._connect()
        futures = [proto.send(hiredis.pack_command(c)) for c in commands]
        return list(await asyncio.gather(*futures, return_exceptions=True))

    async def execute_adjacent(self, *commands: tuple[Any, ...]) -> list[Any]:
        """Several commands back to back on the connection, nothing of other callers between them (ASKING
        before the command it allows); their replies, or the first error."""
        proto = self._proto if self._proto is not None and not self._proto.closed else await self._connect()
        futures = [proto.send(hiredis.pack_command(c)) for c in commands]
        return list(await asyncio.gather(*futures))

    async def _connect(self) -> _Protocol:
        if self._connecting is None:  # one connection attempt, however many callers are waiting for it
            self._connecting = asyncio.ensure_future(self._open())
        try:
            return await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        proto: _Protocol | None = None
        replies: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(self.timeout):
                e = self.endpoint
                if e.path:
                    _, proto = await loop.create_unix_connection(lambda: _Protocol(self, self.timeout), e.path)
                else:
                    _, proto = await loop.create_connection(
                        lambda: _Protocol(self, self.timeout), e.host, e.port, ssl=e.tls
                    )
                setup: list[tuple[Any, ...]] = []
                if e.password:
                    setup.append(("AUTH", e.username, e.password) if e.username else ("AUTH", e.password))
                if e.db:
                    setup.append(("SELECT", e.db))
                replies = [proto.send(hiredis.pack_command(cmd), confirmed=False) for cmd in setup]
                for reply in replies:
                    await reply
        except BaseException as exc:
            # a refused AUTH or SELECT leaves an open socket behind: close it (every retry made one)
            if proto is not None:
                proto.fail(RedisConnectionError("connection setup failed"))
            for reply in replies:  # answered by now (the failure above at the latest): nobody else reads them
                if reply.done() and not reply.cancelled():
                    reply.exception()
            if isinstance(exc, OSError | TimeoutError):
                raise RedisConnectionError(f"cannot connect to Redis: {exc!r}") from exc
            raise
        self._proto = proto
        return proto

    def _lost(self, proto: _Protocol) -> None:
        if self._proto is proto:
            self._proto = None

    async def close(self) -> None:
        if self._proto is not None:
            self._proto.fail(RedisConnectionError("closed"))
            self._proto = None
