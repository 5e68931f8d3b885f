"""Erasing a customer leaves nothing readable in Redis, keeps late events and decisions from bringing the
id back, and takes it off Redis's files on disk within the documented time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from nba.app import redis_client
from nba.customers.erasure import DiskRewrite
from nba.metrics import Metrics
from nba.runtime.embedded_redis import RedisServer
from nba.store import keys
from tests.api.helpers import CROSSSELL_MOBILE, Client, decide, put_customer, send_events
from tests.conftest import AppFactory, learn, learner

CID = "c-erase-7f3a"
EMAIL = "erase-me-7f3a@example.nl"


async def _traces(redis: Redis) -> list[str]:
    """Every place in Redis that still names the customer or holds its e-mail: key names, values of
    strings, hashes, sets, lists and sorted sets, and stream entries."""
    found = []
    async for key in redis.scan_iter(count=1000):
        kind: Any = await redis.type(key)
        content: Any
        if kind == b"string":
            content = await redis.get(key)
        elif kind == b"hash":
            content = await redis.hgetall(key)
        elif kind == b"stream":
            content = await redis.xrange(key)
        elif kind == b"zset":
            content = await redis.zrange(key, 0, -1)
        elif kind == b"list":
            content = await redis.lrange(key, 0, -1)
        else:
            content = await redis.smembers(key)
        text = repr((key, content))  # bytes reprs keep every printable character as it is
        if CID in text or EMAIL in text:
            found.append(key.decode())
    return found


async def _customer_with_everything(client: Client) -> dict[str, object]:
    await put_customer(client, CID, {**CROSSSELL_MOBILE, "email": EMAIL})
    d = await decide(client, CID, contact_id="call-1", request_id="view-1")  # and the request ids
    await send_events(
        client,
        [
            {
                "event_id": "e-1",
                "type": "impression",
                "customer_id": CID,
                "action_id": d["actions"][0]["action_id"],
                "decision_id": d["decision_id"],
                "channel": "web",
            }
        ],
    )
    await learn(client)
    # and one the learner has not seen yet: it waits in the inbox, naming the customer
    await send_events(
        client, [{"event_id": "e-2", "type": "click", "customer_id": CID, "action_id": "tv-addon", "channel": "web"}]
    )
    return d


async def test_erase_leaves_nothing_readable(client: Client, redis: Redis) -> None:
    await _customer_with_everything(client)
    assert len(await _traces(redis)) >= 4  # the customer, its decision records, contacts, shown, the inbox
    assert (await client.delete(f"/v1/customers/{CID}")).status == 204
    assert await _traces(redis) == []
    assert await redis.hget(keys.erased(CID), keys.erased_field(CID))  # the tombstone, without the id


async def test_late_events_and_decisions_for_an_erased_customer_record_nothing(client: Client, redis: Redis) -> None:
    d = await _customer_with_everything(client)
    assert (await client.delete(f"/v1/customers/{CID}")).status == 204
    late = await send_events(
        client,
        [
            {
                "event_id": "e-3",
                "type": "accept",
                "customer_id": CID,
                "action_id": d["actions"][0]["action_id"],  # type: ignore[index]
                "decision_id": d["decision_id"],
                "channel": "call_center",
            },
            {"event_id": "e-4", "type": "click", "customer_id": CID, "action_id": "tv-addon", "channel": "web"},
        ],
    )
    assert late == {
        "accepted": 0,
        "duplicates": 0,
        "credited": 0,
        "unattributed": 0,
        "erased": 2,
        "unknown_customer": 0,
    }
    answer = await decide(client, CID)  # answered as for an unknown customer, and not recorded
    assert answer["segments"] is not None
    await learn(client)
    assert await _traces(redis) == []
    assert (await client.get(f"/v1/customers/{CID}")).status == 404

    # the CRM writes the customer again: a new relationship, recorded as usual
    await put_customer(client, CID, CROSSSELL_MOBILE)
    again = await send_events(
        client, [{"event_id": "e-5", "type": "click", "customer_id": CID, "action_id": "tv-addon", "channel": "web"}]
    )
    assert again["accepted"] == 1
    assert await redis.hget(keys.erased(CID), keys.erased_field(CID)) is None


@pytest.fixture(params=[False, True], ids=["append-only", "and-snapshots"])
async def persistent_redis(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, Path]]:
    snapshots = ("--save", "3600 1") if request.param else ()
    server = RedisServer(tmp_path / "redis", persist=True, extra=snapshots)
    url = await asyncio.to_thread(server.start)
    yield url, tmp_path / "redis"
    await asyncio.to_thread(server.stop)


def _on_disk(directory: Path, text: bytes) -> list[str]:
    return [p.name for p in directory.rglob("*") if p.is_file() and text in p.read_bytes()]


async def test_an_erased_profile_leaves_the_append_only_files(
    make_client: AppFactory, persistent_redis: tuple[str, Path]
) -> None:
    url, directory = persistent_redis
    client: Client = await make_client(url=url)
    await put_customer(client, CID, {**CROSSSELL_MOBILE, "email": EMAIL})
    # Redis writes the append-only file before it answers, except while a background fsync lags (a busy
    # disk, appendfsync everysec): then it holds writes back for up to 2 s
    for _ in range(200):
        if _on_disk(directory, EMAIL.encode()):
            break
        await asyncio.sleep(0.05)
    assert _on_disk(directory, EMAIL.encode())
    rewrite = DiskRewrite(learner(client).store, Metrics(), interval=60)
    assert await rewrite.step() == "none"  # nothing erased: nothing to rewrite
    assert (await client.delete(f"/v1/customers/{CID}")).status == 204
    assert await rewrite.step() == "started"
    assert await rewrite.step() == "none"  # done for this erasure; the next waits for the interval
    redis = redis_client(url, 5.0)
    try:
        for _ in range(1200):  # the rewrite runs in a child of Redis, old files are deleted after it
            info = await redis.info("persistence")
            busy = (
                info["aof_rewrite_in_progress"] or info["rdb_bgsave_in_progress"] or info.get("aof_rewrite_scheduled")
            )
            if not busy and not _on_disk(directory, EMAIL.encode()):
                break
            await asyncio.sleep(0.05)
        assert _on_disk(directory, EMAIL.encode()) == []
        assert await redis.get(keys.REWRITE_DUE) is None
        assert (await redis.info("persistence"))["rdb_last_bgsave_status"] == "ok"
    finally:
        await redis.aclose()
