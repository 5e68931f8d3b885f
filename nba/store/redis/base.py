"""The Redis side of every store part: the pipelined connection, scripts called by SHA, timing.

Scripts are called by SHA with `EVALSHA` and loaded on NOSCRIPT (a restarted Redis forgets them);
redis-py's own Script objects in a pipeline would re-check every script on every execute, which is an
extra round trip per batch.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from redis.asyncio import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import NoScriptError, RedisError, ResponseError

from nba.store import keys
from nba.store.client import Client, router_for
from nba.store.cluster import ClusterRouter
from nba.store.routing import Router
from nba.store.unreadable import Unreadable

Observer = Callable[[str, float, bool], None]  # operation, seconds, whether it failed
INBOX_WAIT_MAX = 1.0  # seconds one blocking read of the inbox may wait (added to that connection's timeout)


class Script:
    """A Lua script of store/scripts.py, called by its SHA."""

    def __init__(self, text: str):
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    def args(self, keys_: list[str], args: Iterable[Any]) -> tuple[Any, ...]:
        return (self.sha, len(keys_), *keys_, *args)


class RedisBase:
    def __init__(
        self,
        client: Client,
        observe: Observer | None = None,
        unreadable: Unreadable | None = None,
        *,
        replicas: int = 0,
    ):
        self.client = client
        self.cluster = isinstance(client, RedisCluster)
        self._observe = observe or (lambda op, ms, failed: None)
        self.unreadable = unreadable or Unreadable()
        self.description = "Redis"  # where this store is, as messages name it (no password)
        # the attribute registry (keys.ATTRIBUTE_CODES) as far as this process has needed it
        self._code_of: dict[str, int] = {}
        self._name_of: dict[int, str] = {}
        self._registry_read: asyncio.Task[None] | None = None  # the one registry read in flight
        # the customer scripts and the inbox (every decision and event) share one pipelined connection (per
        # primary on a cluster)
        self._route = router_for(client)
        # the learner's blocking read of the inbox
        self._waits = self._route.blocking(INBOX_WAIT_MAX)
        # what must be on `replicas` replicas before it is acknowledged (NBA_DURABILITY=replica: events and
        # the learner's writes), on connections of their own: a WAIT holds up its connection
        self.replicas = replicas
        self._confirmed = self._route.confirmed(replicas) if replicas else self._route
        self._shards: int | None = None  # inbox shards (keys.LEARN_SHARDS), fixed once known
        self._shard_waits: list[Router] = []  # a blocking connection per shard (learner.py's wait_inbox)

    async def _timed(self, op: str, call: Callable[[], Awaitable[Any]]) -> Any:
        # Any: with decode_responses=False replies are bytes, which redis-py's types cannot express
        start = time.perf_counter()
        failed = False
        try:
            return await call()
        except (RedisError, OSError, asyncio.CancelledError):
            # cancelled: a decision's deadline passed while Redis had not answered, which operators must
            # see as much as an error (a slow Redis degrades decisions without ever raising)
            failed = True
            raise
        finally:
            self._observe(op, time.perf_counter() - start, failed)

    async def _eval(
        self, op: str, script: Script, keys_: list[str], args: Iterable[Any], *, route: Router | None = None
    ) -> Any:
        argv = script.args(keys_, args)
        return await self._timed(op, lambda: self._evalsha(script, argv, route or self._route))

    async def _evalsha(self, script: Script, argv: tuple[Any, ...], route: Router) -> Any:
        """EVALSHA, loading the script when Redis does not have it (first use, a restart, SCRIPT FLUSH; on a
        cluster, each primary loads it on its own)."""
        try:
            return await route.execute("EVALSHA", *argv)
        except NoScriptError:
            await route.execute("SCRIPT", "LOAD", script.text, key=argv[2])
            return await route.execute("EVALSHA", *argv)

    async def inbox_shards(self) -> int:
        """How many shards the learner's inbox has: fixed by the first process, then never changed (an event
        must find its shard where the learner reads it)."""
        if self._shards is None:
            stored = await self._route.execute("GET", keys.LEARN_SHARDS)
            if stored is None:
                default = 1
                # data of a version before the shards (its one inbox, maybe moved into a cluster) keeps one
                # shard: its entries are in that stream, its position is that stream's
                legacy = await self._route.execute("EXISTS", keys.LEARN_INBOX, keys.LEARN_POSITION)
                if isinstance(self._route, ClusterRouter) and not legacy:
                    default = keys.SHARDS_PER_PRIMARY * max(1, len(self._route.topology.primaries()))
                await self._route.execute("SET", keys.LEARN_SHARDS, default, "NX")
                stored = await self._route.execute("GET", keys.LEARN_SHARDS)
            self._shards = int(stored)
        return self._shards

    async def ping(self) -> bool:
        return bool(await self._timed("ping", self.client.ping))

    async def config_advice(self) -> list[str]:
        """Where the Redis configuration makes customers' keys larger than they need to be (see
        keys.REDIS_CONFIG); empty when it is fine or CONFIG is not allowed (managed Redis services)."""
        advice = []
        try:
            for name, wanted in keys.REDIS_CONFIG.items():
                current = min((int(v) for v in await self._config(name)), default=None)
                if current is not None and int(current) < wanted:
                    advice.append(
                        f"{name} is {current}; {wanted} keeps customers' hashes compact (with the "
                        "default of 64 a customer takes about twice the memory)"
                    )
        except ResponseError:
            return []
        return advice

    async def _config(self, name: str) -> list[str]:
        """CONFIG GET of one setting: its value on the server, or on every primary of a cluster."""
        client: Any = self.client
        if not self.cluster:
            value = (await client.config_get(name)).get(name)
            return [] if value is None else [value]
        replies = await client.config_get(name, target_nodes=RedisCluster.PRIMARIES)  # node -> {name: value}
        return [r[name] for r in replies.values() if name in r]

    async def close(self) -> None:
        await self._route.close()
        await self._waits.close()
        for waits in self._shard_waits[1:]:
            await waits.close()
        if self._confirmed is not self._route:
            await self._confirmed.close()
        pool = getattr(self.client, "connection_pool", None)
        await self.client.aclose()
        if isinstance(pool, SentinelConnectionPool):  # the client does not close its sentinels' connections
            await pool.sentinel_manager.aclose()

    async def _eval_many(
        self,
        script: Script,
        calls: list[tuple[Any, ...]],
        then: list[tuple[Any, ...]] | None = None,
        *,
        route: Router | None = None,
    ) -> list[Any]:
        """Many calls of one script in one pipelined round trip, followed by the commands `then` (on one
        server, in the same write: Redis runs them after the scripts). On a cluster, `then` may go to
        other primaries, so it is sent once the scripts have answered, to keep that order. The scripts'
        results; any failure raises."""
        r = route or self._route
        after = then or []
        first = [("EVALSHA", *argv) for argv in calls]
        replies = await r.execute_all(first if r.cluster else first + after)
        results = replies[: len(calls)]
        # a script flushed from Redis ran nowhere: run only those calls again (the first one loads it),
        # before `then` fails the batch if it failed
        for i, res in enumerate(results):
            if isinstance(res, NoScriptError):
                results[i] = await self._evalsha(script, calls[i], r)
            elif isinstance(res, BaseException):
                raise res
        later = await r.execute_all(after) if r.cluster and after else replies[len(calls) :]
        for reply in later:
            if isinstance(reply, BaseException):
                raise reply
        return results
