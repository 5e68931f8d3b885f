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

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from nba.store import keys
from nba.store.multiplex import Multiplexer
from nba.store.unreadable import Unreadable

Observer = Callable[[str, float, bool], None]  # operation, milliseconds, whether it failed
INBOX_WAIT_MAX = 1.0  # seconds one blocking read of the inbox may wait (added to that connection's timeout)


class Script:
    """A Lua script of store/scripts.py, called by its SHA."""

    def __init__(self, text: str):
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    def args(self, keys_: list[str], args: Iterable[Any]) -> tuple[Any, ...]:
        return (self.sha, len(keys_), *keys_, *args)


class RedisBase:
    def __init__(self, client: Redis, observe: Observer | None = None, unreadable: Unreadable | None = None):
        self.client = client
        self._observe = observe or (lambda op, ms, failed: None)
        self.unreadable = unreadable or Unreadable()
        self.description = "Redis"  # where this store is, as messages name it (no password)
        # the attribute registry (keys.ATTRIBUTE_CODES) as far as this process has needed it
        self._code_of: dict[str, int] = {}
        self._name_of: dict[int, str] = {}
        # the customer scripts and the inbox (every decision and event) share one pipelined connection
        self._mux = Multiplexer.like(client.connection_pool)
        # the learner's blocking read of the inbox
        self._waits = self._mux.blocking(INBOX_WAIT_MAX)

    async def _timed(self, op: str, call: Callable[[], Awaitable[Any]]) -> Any:
        # Any: with decode_responses=False replies are bytes, which redis-py's types cannot express
        start = time.perf_counter()
        failed = False
        try:
            return await call()
        except (RedisError, OSError):
            failed = True
            raise
        finally:
            self._observe(op, (time.perf_counter() - start) * 1000.0, failed)

    async def _eval(self, op: str, script: Script, keys_: list[str], args: Iterable[Any]) -> Any:
        argv = script.args(keys_, args)
        return await self._timed(op, lambda: self._evalsha(script, argv))

    async def _evalsha(self, script: Script, argv: tuple[Any, ...]) -> Any:
        """EVALSHA, loading the script when Redis does not have it (first use, a restart, SCRIPT FLUSH)."""
        try:
            return await self._mux.execute("EVALSHA", *argv)
        except NoScriptError:
            await self._mux.execute("SCRIPT", "LOAD", script.text)
            return await self._mux.execute("EVALSHA", *argv)

    async def ping(self) -> bool:
        return bool(await self._timed("ping", self.client.ping))

    async def config_advice(self) -> list[str]:
        """Where the Redis configuration makes customers' keys larger than they need to be (see
        keys.REDIS_CONFIG); empty when it is fine or CONFIG is not allowed (managed Redis services)."""
        advice = []
        try:
            for name, wanted in keys.REDIS_CONFIG.items():
                current = (await self.client.config_get(name)).get(name)
                if current is not None and int(current) < wanted:
                    advice.append(
                        f"{name} is {current}; {wanted} keeps customers' hashes compact (with the "
                        "default of 64 a customer takes about twice the memory)"
                    )
        except ResponseError:
            return []
        return advice

    async def close(self) -> None:
        await self._mux.close()
        await self._waits.close()
        await self.client.aclose()

    async def _eval_many(
        self, script: Script, calls: list[tuple[Any, ...]], then: list[tuple[Any, ...]] | None = None
    ) -> list[Any]:
        """Many calls of one script in one pipelined round trip, followed by the commands `then` in the
        same write (tasks start in the order gather gets them); the scripts' results. Any failure raises."""
        after = then or []
        replies: list[Any] = await asyncio.gather(
            *(self._mux.execute("EVALSHA", *argv) for argv in calls),
            *(self._mux.execute(*cmd) for cmd in after),
            return_exceptions=True,
        )
        results = replies[: len(calls)]
        # a script flushed from Redis ran nowhere: run only those calls again (the first one loads it),
        # before `then` fails the batch if it failed
        for i, res in enumerate(results):
            if isinstance(res, NoScriptError):
                results[i] = await self._evalsha(script, calls[i])
            elif isinstance(res, BaseException):
                raise res
        for reply in replies[len(calls) :]:
            if isinstance(reply, BaseException):
                raise reply
        return results
