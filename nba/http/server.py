"""Running the HTTP server of one process: its listening socket, a cap on open connections, keep-alive,
and a graceful stop on SIGINT/SIGTERM.

Why a cap: every connection costs a file descriptor, and a client that opens many and sends nothing
(1,007 idle keep-alive sockets were enough with the common limit of 1,024) used to take the server down
for everyone until they timed out. Connections beyond `max_connections` make room by closing the
longest-idle connection (one with no request in flight: an idle keep-alive, or one that has not sent a
whole request yet); when every connection is busy, the new one is answered 503 with Retry-After and
closed. The process's descriptor limit is raised to fit the cap, or the cap lowered to fit the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import socket
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from nba.errors import Unavailable
from nba.http.problem import problem_response

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Any]
SPARE_DESCRIPTORS = 256  # for Redis connections, files, and connections being closed
# Connections the kernel may hold for us before we accept them. The event loop accepts what is queued in
# one go, before the closes it causes take effect: the queue bounds that overshoot (within the spare).
LISTEN_BACKLOG = 128


class PortInUse(OSError):
    """The listen address is taken (another nba serve?): said in one line, not a traceback."""


def listen(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening socket on host:port. Without `reuse_port` a port anyone listens on is refused (also one
    whose listeners set SO_REUSEPORT), so a second server cannot silently share the first one's port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait for TIME_WAIT
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(
                exc.errno,
                f"port {port} on {host} is in use (another nba serve?); choose another with --port or NBA_PORT",
            ) from None
        raise
    sock.setblocking(False)
    return sock


def fit_to_descriptors(max_connections: int) -> int:
    """Raise this process's open-file limit so that `max_connections` fit, as far as the hard limit
    allows; the cap that fits (lowered, with a warning, when the hard limit is too low)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + SPARE_DESCRIPTORS
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    fits = max(16, soft - SPARE_DESCRIPTORS)
    if fits < max_connections:
        log.warning(
            "the open-file limit is %d: at most %d connections (NBA_MAX_CONNECTIONS is %d); raise the "
            "limit (ulimit -n) to allow more",
            soft,
            fits,
            max_connections,
        )
        return fits
    return max_connections


class ConnectionGuard:
    """Keeps open connections at most `limit` (see the module's docstring). Its middleware knows which
    connections have a request in flight; its protocol factory admits new connections."""

    def __init__(self, limit: int, on_drop: Callable[[str], None] | None = None):
        self.limit = limit
        self._on_drop = on_drop or (lambda reason: None)
        self._busy: dict[RequestHandler, int] = {}  # connections with requests in flight (only those)
        self._refused: set[RequestHandler] = set()
        # accepted, not connected yet: a burst of accepts runs before any connection_made
        self._pending: dict[RequestHandler, float] = {}
        self.server: web.Server | None = None

    @property
    def open(self) -> int:
        return self._count(self.server.connections) if self.server is not None else 0

    def _count(self, connections: list[RequestHandler]) -> int:
        known = set(connections)
        now = time.monotonic()
        # a connection is made in the loop iteration after it was accepted: a second covers a busy loop
        self._pending = {h: t for h, t in self._pending.items() if h not in known and now - t < 1.0}
        self._refused = {h for h in self._refused if h in known or h in self._pending}
        return len(connections) + len(self._pending)

    def factory(self, server: web.Server) -> Callable[[], RequestHandler]:
        self.server = server

        def admit() -> RequestHandler:
            connections = server.connections
            full = self._count(connections) >= self.limit
            handler = server()
            if full and not self._close_idle(connections):
                self._refused.add(handler)
                self._on_drop("refused")
            self._pending[handler] = time.monotonic()
            return handler

        return admit

    def _close_idle(self, connections: list[RequestHandler]) -> bool:
        for handler in connections:  # oldest first
            if handler not in self._busy:
                handler.force_close()  # nothing in flight: its transport (and descriptor) goes at once
                self._refused.discard(handler)
                self._on_drop("idle_closed")
                return True
        return False

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        proto = request.protocol
        if proto in self._refused:
            self._refused.discard(proto)
            refusal = problem_response(
                Unavailable(
                    f"this server has {self.limit} connections open, all busy; retry shortly",
                    code="too_many_connections",
                )
            )
            refusal.force_close()
            return refusal
        self._busy[proto] = self._busy.get(proto, 0) + 1
        try:
            response: web.StreamResponse = await handler(request)
            return response
        finally:
            left = self._busy.pop(proto) - 1
            if left:
                self._busy[proto] = left


def run(
    app: web.Application, sock: socket.socket, guard: ConnectionGuard, *, keepalive: float, shutdown_timeout: float
) -> None:
    """Serve `app` on `sock` until SIGINT or SIGTERM, then stop gracefully: what aiohttp's run_app does,
    with the connection guard as the protocol factory."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(
        serve(app, sock, guard, keepalive=keepalive, shutdown_timeout=shutdown_timeout, handle_signals=True)
    )
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError, web.GracefulExit, KeyboardInterrupt):
                loop.run_until_complete(main)  # its finally stops the server
        finally:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


async def serve(
    app: web.Application,
    sock: socket.socket,
    guard: ConnectionGuard,
    *,
    keepalive: float,
    shutdown_timeout: float,
    handle_signals: bool = False,
) -> None:
    """Serve until cancelled (or, with `handle_signals`, until SIGINT/SIGTERM), then stop gracefully."""
    runner = web.AppRunner(
        app,
        handle_signals=handle_signals,
        access_log=None,
        keepalive_timeout=keepalive,
        shutdown_timeout=shutdown_timeout,
    )
    await runner.setup()
    listener: asyncio.Server | None = None
    try:
        assert runner.server is not None
        listener = await asyncio.get_running_loop().create_server(
            guard.factory(runner.server), sock=sock, backlog=LISTEN_BACKLOG
        )
        host, port = sock.getsockname()[:2]
        log.info("listening on http://%s:%d (at most %d connections)", host, port, guard.limit)
        await asyncio.Event().wait()
    finally:
        if listener is not None:
            listener.close()  # no new connections; runner.cleanup closes the open ones
        await runner.cleanup()
        if listener is not None:
            await listener.wait_closed()
