"""The shared pipelined connection against a real redis-server: order, errors, abandoned callers, loss."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from nba.runtime.embedded_redis import RedisServer
from nba.store.multiplex import Endpoint, Multiplexer, ReplicaWaitError
from tests.api.helpers import CROSSSELL_MOBILE, Client, decide, put_customer, send_events


def mux_for(url: str, timeout: float = 2.0) -> Multiplexer:
    host, port = url.removeprefix("redis://").split("/")[0].split(":")
    return Multiplexer(Endpoint(host=host, port=int(port)), timeout=timeout)


async def test_concurrent_commands_get_their_own_replies(redis_url: str, redis: Redis) -> None:
    mux = mux_for(redis_url)
    try:
        replies = await asyncio.gather(*(mux.execute("INCRBY", f"mux:{i % 7}", i) for i in range(2000)))
        # each INCRBY's reply is its own key's running total: a shifted reply would break the sums
        totals: dict[int, int] = {}
        for i, reply in enumerate(replies):
            totals[i % 7] = totals.get(i % 7, 0) + i
            assert reply == totals[i % 7]
        assert await mux.execute("GET", "mux:3") == str(totals[3]).encode()
        assert await mux.execute("EVAL", "return {1, 'a', {KEYS[1]}}", 1, "k") == [1, b"a", [b"k"]]
    finally:
        await mux.close()


async def test_arguments_reach_redis_as_redis_py_sends_them(redis_url: str, redis: Redis) -> None:
    # the scripts read floats back with tonumber: a value that lost digits on the way would drift the model
    mux = mux_for(redis_url)
    values: list[str | bytes | int | float] = ["é ü", b"\x00\xff\r\n", 0, -7, 2**62, 0.1, 1 / 3, 1e-300, -2.5e20]
    try:
        for i, v in enumerate(values):
            assert await mux.execute("SET", f"mux:arg:{i}", v) == b"OK"
            await redis.set(f"mux:py:{i}", v)
            assert await redis.get(f"mux:arg:{i}") == await redis.get(f"mux:py:{i}")
        assert float(await mux.execute("GET", "mux:arg:6")) == 1 / 3
        with pytest.raises(TypeError):  # not sent as "True" or "None": refused before anything is queued
            await mux.execute("SET", "mux:arg:bad", None)
        assert await mux.execute("PING") == b"PONG"
        assert await redis.exists("mux:arg:bad") == 0
    finally:
        await mux.close()


async def test_errors_are_redis_py_exceptions_and_do_not_shift_replies(redis_url: str, redis: Redis) -> None:
    mux = mux_for(redis_url)
    try:
        replies: list[object] = await asyncio.gather(
            mux.execute("INCR", "mux:fresh"),
            mux.execute("EVALSHA", "0" * 40, 0),
            mux.execute("PING"),
            return_exceptions=True,
        )
        first, nosha, good = replies
        assert first == 1
        assert isinstance(nosha, NoScriptError)
        assert good == b"PONG"
        await mux.execute("SET", "mux:text", "abc")
        with pytest.raises(ResponseError):
            await mux.execute("INCR", "mux:text")
        assert await mux.execute("GET", "mux:text") == b"abc"
    finally:
        await mux.close()


async def test_a_caller_that_stops_waiting_does_not_desynchronise_the_rest(redis_url: str, redis: Redis) -> None:
    mux = mux_for(redis_url)
    try:
        await mux.execute("SET", "mux:slow", "x")
        slow = asyncio.ensure_future(
            mux.execute(
                "EVAL",
                "local t = redis.call('TIME') "
                "while true do local n = redis.call('TIME') "
                "if (n[1] - t[1]) * 1e6 + n[2] - t[2] > 200000 then break end end "
                "return 'slow'",
                0,
            )
        )
        after = asyncio.ensure_future(mux.execute("GET", "mux:slow"))
        await asyncio.sleep(0.05)
        slow.cancel()  # a decision past its deadline
        assert await after == b"x"
        assert await mux.execute("ECHO", "next") == b"next"
    finally:
        await mux.close()


async def test_a_lost_server_fails_waiting_calls_and_a_new_one_is_used(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", persist=False)
    url = server.start()
    mux = mux_for(url, timeout=1.0)
    try:
        assert await mux.execute("PING") == b"PONG"
        server.stop()
        with pytest.raises(RedisConnectionError):
            await mux.execute("PING")
        url = server.start()
        mux.endpoint = replace(mux.endpoint, port=int(url.rsplit(":", 1)[1].split("/")[0]))  # perhaps another port
        assert await mux.execute("PING") == b"PONG"
    finally:
        await mux.close()
        server.stop()


async def test_store_reloads_its_scripts_after_redis_forgot_them(client: Client, redis: Redis) -> None:
    await put_customer(client, "c-flush-1", CROSSSELL_MOBILE)
    await put_customer(client, "c-flush-2", CROSSSELL_MOBILE)
    await redis.script_flush()  # what a Redis restart or failover does to loaded scripts
    shown = await decide(client, "c-flush-1")
    assert shown["degraded"] is False
    assert shown["actions"]
    await redis.script_flush()
    # a batch of several customers runs one script call each in one pipelined round trip
    events = [
        {
            "event_id": f"flush-{cid}",
            "type": "impression",
            "customer_id": cid,
            "action_id": shown["actions"][0]["action_id"],
            "channel": "web",
        }
        for cid in ("c-flush-1", "c-flush-2")
    ]
    assert (await send_events(client, events))["accepted"] == 2


async def test_confirmed_writes_are_answered_once_a_replica_has_them(tmp_path: Path) -> None:
    primary = RedisServer(tmp_path / "primary", persist=False)
    url = primary.start()
    host, port = url.removeprefix("redis://").split("/")[0].split(":")
    plain = mux_for(url)
    confirmed = plain.confirmed(1)
    replica: RedisServer | None = None
    try:
        # no replica: applied, but not acknowledged (the caller answers 503; re-sending is safe)
        with pytest.raises(ReplicaWaitError):
            await confirmed.execute("SET", "k", "v")
        assert await plain.execute("GET", "k") == b"v"
        # many writes at once share one WAIT, and later ones wait for the WAIT that is out instead of
        # queueing one WAIT each behind it (a WAIT holds up the whole connection until it answers)
        results = await asyncio.gather(*(confirmed.execute("INCR", "n") for _ in range(200)), return_exceptions=True)
        assert all(isinstance(r, ReplicaWaitError) for r in results)
        assert await plain.execute("GET", "n") == b"200"
        stats = await plain.execute("INFO", "commandstats")
        waits = int(stats.decode().split("cmdstat_wait:calls=")[1].split(",")[0])
        assert waits <= 3, waits
        replica = RedisServer(tmp_path / "replica", persist=False, extra=("--replicaof", host, port))
        of_replica = mux_for(replica.start())
        deadline = asyncio.get_running_loop().time() + 60
        while b"master_link_status:up" not in await of_replica.execute("INFO", "replication"):
            assert asyncio.get_running_loop().time() < deadline, "the replica did not sync"
            await asyncio.sleep(0.05)
        await of_replica.close()
        assert await confirmed.execute("SET", "k2", "v2") == b"OK"  # on the replica before it is answered
        assert (await plain.execute("WAIT", 1, 0)) >= 1
        assert not plain.replicas  # the plain connection waits for nobody
    finally:
        await plain.close()
        await confirmed.close()
        if replica is not None:
            replica.stop()
        primary.stop()


async def test_a_refused_password_leaves_no_socket_open(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", persist=False, password="right")
    url = server.start()
    host, port = url.rsplit("@", 1)[1].split("/")[0].split(":")
    mux = Multiplexer(Endpoint(host=host, port=int(port), password="wrong"), timeout=2.0)
    try:
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(50):  # every call tries to connect again, and is refused
            with pytest.raises(ResponseError, match=r"WRONGPASS|invalid"):
                await mux.execute("PING")
        assert len(os.listdir("/proc/self/fd")) - before < 5
    finally:
        await mux.close()
        server.stop()
