"""Which connection a command of the store's pipelined path takes: the one server, or on Redis Cluster the
primary of its key's slot (store/cluster.py). Callers name the key a command routes by, or let it be
read from the command (the first key of EVALSHA, the stream of XREAD, the key of the others).
"""

from __future__ import annotations

import asyncio
import binascii
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from redis.exceptions import ResponseError

from nba.store.multiplex import Multiplexer


def key_slot(key: str | bytes) -> int:
    """The Redis Cluster hash slot of a key: CRC16 of its hash tag (the text between the first `{` and the
    next `}`, when not empty) or of the whole key."""
    k = key.encode() if isinstance(key, str) else key
    start = k.find(b"{")
    if start >= 0:
        end = k.find(b"}", start + 1)
        if end > start + 1:
            k = k[start + 1 : end]
    return binascii.crc_hqx(k, 0) & 16383


def routing_key(args: tuple[Any, ...]) -> Any:
    """The key a command of the pipelined path routes by (the commands nba sends on it)."""
    name = str(args[0]).upper()
    if name in ("EVALSHA", "EVAL"):
        if int(args[2]) < 1:
            raise ValueError(f"{name} without keys names no slot: route it by a key")
        return args[3]
    if name == "XREAD":
        return args[[str(a).upper() for a in args].index("STREAMS") + 1]
    return args[1]


async def each(execute: Callable[..., Awaitable[Any]], commands: list[tuple[Any, ...]]) -> list[Any | BaseException]:
    """Every command at once (started in order, so one connection's leave in one write); replies or
    exceptions, in order."""
    return list(await asyncio.gather(*(execute(*c) for c in commands), return_exceptions=True))


class Router(Protocol):
    """The pipelined connections of one store: `await router.execute(*command)`."""

    @property
    def cluster(self) -> bool: ...

    async def execute(self, *args: Any, key: str | bytes | None = None) -> Any: ...

    async def execute_all(self, commands: list[tuple[Any, ...]]) -> list[Any | BaseException]:
        """Many commands at once (each routed by its own key); replies or exceptions, in order."""
        ...

    def node_of(self, key: str | bytes) -> object:
        """Which server holds the key now (equal for keys on one server)."""
        ...

    def blocking(self, seconds: float) -> Router: ...

    def confirmed(self, replicas: int) -> Router: ...

    async def close(self) -> None: ...


class SingleNode:
    """Everything on one server: the key is not even looked at."""

    cluster = False

    def __init__(self, mux: Multiplexer):
        self.mux = mux

    async def execute(self, *args: Any, key: str | bytes | None = None) -> Any:
        try:
            return await self.mux.execute(*args)
        except ResponseError as exc:
            raise _unmoved(exc) from None

    async def execute_all(self, commands: list[tuple[Any, ...]]) -> list[Any | BaseException]:
        replies = await self.mux.execute_many(commands)
        return [_unmoved(r) if isinstance(r, ResponseError) else r for r in replies]

    def node_of(self, key: str | bytes) -> object:
        return self.mux

    def blocking(self, seconds: float) -> SingleNode:
        return SingleNode(self.mux.blocking(seconds))

    def confirmed(self, replicas: int) -> SingleNode:
        return SingleNode(self.mux.confirmed(replicas))

    async def close(self) -> None:
        await self.mux.close()


def _unmoved(exc: ResponseError) -> ResponseError:
    if str(exc).startswith("MOVED"):
        return ResponseError(
            f"{exc}: this Redis is a Redis Cluster node, but it did not answer when nba started and was "
            "taken for a single server; restart nba, or list several seed nodes in NBA_REDIS_URL"
        )
    return exc
