"""Request bodies are read whole, however the network cuts them, within a size and a time limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from nba.http import wire
from nba.http.body import BodyLimits
from tests.api.helpers import Client
from tests.conftest import AppFactory


def _batch(n: int, properties_bytes: int, prefix: str) -> bytes:
    props = {"note": "x" * properties_bytes}
    return orjson.dumps(
        {
            "events": [
                {
                    "event_id": f"{prefix}-{i}",
                    "type": "impression",
                    "customer_id": f"c-{prefix}-{i % 50}",
                    "action_id": "loyalty-gift",
                    "channel": "web",
                    "properties": props,
                }
                for i in range(n)
            ]
        }
    )


async def raw_post(
    client: Client,
    path: str,
    body: bytes,
    *,
    segment: int,
    gap: float,
    declared: int | None = None,
    read_timeout: float = 60.0,
) -> tuple[int, dict[str, Any]]:
    """POST over a plain socket, the body written `segment` bytes at a time with `gap` seconds between."""
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    try:
        length = len(body) if declared is None else declared
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        try:
            for at in range(0, len(body), segment):
                writer.write(body[at : at + segment])
                await writer.drain()
                if gap:
                    await asyncio.sleep(gap)
        except ConnectionError:  # the server answered early and closed: its answer is what is tested
            pass
        # the answer, without waiting for the connection to close (the server lingers to drain a body)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), read_timeout)
        size = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        payload = await asyncio.wait_for(reader.readexactly(size), read_timeout)
    finally:
        writer.close()
    return int(head.split(b" ", 2)[1]), orjson.loads(payload)


@pytest.mark.parametrize(
    ("events", "properties", "segment", "gap"),
    [
        (30, 900, 1448, 0.001),  # about 30 KB as TCP segments 1 ms apart: refused every time before
        (350, 3900, 65536, 0.001),  # about 1.4 MB
        (1000, 3900, 1448 * 45, 0.0),  # about 3.9 MB, as fast as the socket takes it
        (80, 3900, 400_000, 0.0),  # about 320 KB in one write: refused 10 of 10 before
    ],
)
async def test_a_valid_batch_is_accepted_however_it_is_cut(
    client: Client, events: int, properties: int, segment: int, gap: float
) -> None:
    body = _batch(events, properties, f"s{segment}")
    assert len(body) <= wire.MAX_EVENTS_BODY
    status, answer = await raw_post(client, "/v1/events", body, segment=segment, gap=gap)
    assert status == 202, answer
    assert answer["accepted"] == events


async def test_a_chunked_body_is_read_whole(client: Client) -> None:
    body = _batch(40, 500, "chunked")

    async def pieces() -> AsyncIterator[bytes]:
        for at in range(0, len(body), 1000):
            yield body[at : at + 1000]
            await asyncio.sleep(0.001)

    resp = await client.post("/v1/events", data=pieces(), headers={"Content-Type": "application/json"})
    assert resp.status == 202, await resp.text()
    assert (await resp.json())["accepted"] == 40


async def test_a_chunked_body_over_the_limit_is_413(client: Client) -> None:
    async def pieces() -> AsyncIterator[bytes]:
        yield b'{"customer_id": "'
        for _ in range(wire.MAX_DECIDE_BODY // 4096 + 1):
            yield b"x" * 4096

    resp = await client.post("/v1/decide", data=pieces(), headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert (await resp.json())["code"] == "payload_too_large"


async def test_a_client_that_stops_sending_gets_408_and_nothing_is_applied(make_client: AppFactory) -> None:
    client: Client = await make_client(body_limits=BodyLimits(idle=0.3, total=5.0))
    body = _batch(5, 10, "stalled")
    loop = asyncio.get_running_loop()
    start = loop.time()
    # declares the whole body, sends half of it, then waits
    status, problem = await raw_post(
        client, "/v1/events", body[: len(body) // 2], segment=len(body), gap=0, declared=len(body)
    )
    assert status == 408
    assert problem["code"] == "body_timeout"
    assert loop.time() - start < 5.0
    customer = await client.get("/v1/customers/c-stalled-0")
    assert customer.status == 404


async def test_a_trickling_client_is_cut_off_at_the_total_limit(make_client: AppFactory) -> None:
    client: Client = await make_client(body_limits=BodyLimits(idle=1.0, total=0.5))
    body = _batch(5, 10, "trickle")
    status, problem = await raw_post(client, "/v1/events", body, segment=20, gap=0.05)
    assert status == 408
    assert "within 0.5 s" in problem["detail"]
