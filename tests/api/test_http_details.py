"""HTTP details a client relies on: Allow on 405 and an explicit cap on open connections, idle ones closed
first and the excess answered 503 with Retry-After (test_degraded checks Retry-After on Redis's 503s)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import numpy as np
import pytest
from aiohttp import ClientSession

from nba.app import AppOptions, create_app, redis_client
from nba.http.body import BodyLimits
from nba.http.routes import GUARD
from nba.http.server import ConnectionGuard, listen, serve
from nba.rules.rulebook import Rulebook
from tests.api.helpers import Client, problem
from tests.conftest import Clock


async def test_405_names_the_allowed_methods(client: Client) -> None:
    resp = await client.get("/v1/decide")
    await problem(resp, 405)
    assert resp.headers["Allow"] == "POST"


@pytest.fixture
async def guarded(redis_url: str, rulebook: Rulebook) -> AsyncIterator[tuple[int, ConnectionGuard]]:
    """nba served the way `nba serve` serves it, with a cap of 3 connections."""
    app = create_app(
        rulebook,
        redis_client(redis_url, 5.0),
        AppOptions(
            rng=np.random.default_rng(1),
            clock=Clock(),
            background=False,
            max_connections=3,
            body_limits=BodyLimits(idle=30.0, total=30.0),
        ),
    )
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    task = asyncio.create_task(serve(app, sock, app[GUARD], keepalive=75.0, shutdown_timeout=1.0))
    try:
        yield port, app[GUARD]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _busy(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection with a request in flight: headers sent, the body still coming."""
    reader, writer = await _open(port)
    writer.write(
        b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    await writer.drain()
    return reader, writer


async def _wait_open(guard: ConnectionGuard, n: int) -> None:
    for _ in range(500):
        if guard.open == n:
            return
        await asyncio.sleep(0.01)
    assert guard.server is not None
    raise AssertionError(
        f"{guard.open} connections open, expected {n}: {guard.server.connections} {guard._pending} {guard._busy}"
    )


async def test_idle_connections_make_room_for_new_ones(guarded: tuple[int, ConnectionGuard]) -> None:
    port, guard = guarded
    idle = [await _open(port) for _ in range(3)]
    await _wait_open(guard, 3)
    async with ClientSession() as session:
        for _ in range(3):
            async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert resp.status == 200
    # the longest-idle connection made room for the session's (which it then kept alive)
    assert await asyncio.wait_for(idle[0][0].read(), 5) == b""
    for _, writer in idle:
        writer.close()


async def test_when_every_connection_is_busy_a_new_one_is_answered_503(guarded: tuple[int, ConnectionGuard]) -> None:
    port, guard = guarded
    busy = [await _busy(port) for _ in range(3)]
    await _wait_open(guard, 3)
    await asyncio.sleep(0.1)  # their requests reached the handler
    async with ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as resp:
        body = await problem(resp, 503)
        assert body["code"] == "too_many_connections"
        assert resp.headers["Retry-After"] == "1"
        assert resp.headers["Connection"] == "close"
    for _, writer in busy:
        writer.close()
    await _wait_open(guard, 0)
    async with ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as resp:
        assert resp.status == 200
