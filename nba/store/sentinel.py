"""The pipelined path on Redis Sentinel: everything on one primary, whichever server the sentinels name.

The primary's address is asked of the sentinels (`SENTINEL get-master-addr-by-name`, the first that
answers) when the first call is made, and again when a call finds the primary gone (its connection
lost) or demoted (a write answered READONLY: the old primary came back as a replica). The call is then
sent once more if the sentinels name another server; otherwise it fails at once (decide degrades,
events answer 503) until they do. When and how often they are asked: store/discovery.py. The calls are
safe to send twice.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from nba.store.discovery import Address, Discovery, FollowingRouter, at
from nba.store.multiplex import Endpoint, Multiplexer


class Primary(Discovery):
    """Where the sentinels last said the primary of `service` is; shared by a store's routers."""

    def __init__(self, sentinels: list[Endpoint], service: str, data: Endpoint, timeout: float):
        super().__init__()
        if not sentinels:
            raise ValueError("Redis Sentinel needs at least one sentinel address")
        self.sentinels = sentinels
        self.service = service
        self.data = data  # credentials, database and TLS of the data servers
        self.timeout = timeout
        self.address: Address | None = None
        self.changes = 0
        self._probes = [Multiplexer(s, min(timeout, 1.0)) for s in sentinels]

    def endpoint(self, address: Address) -> Endpoint:
        return at(self.data, address)

    async def _ask(self) -> None:
        tried: list[str] = []
        for sentinel, probe in zip(self.sentinels, self._probes, strict=True):
            where = f"{sentinel.host}:{sentinel.port}"
            try:
                reply = await probe.execute("SENTINEL", "get-master-addr-by-name", self.service)
            except (RedisConnectionError, RedisTimeoutError, ResponseError, OSError) as exc:
                tried.append(f"{where} ({exc.__class__.__name__})")
                continue
            if not reply:
                tried.append(f"{where} (does not know the service {self.service!r})")
                continue
            address = (reply[0].decode(), int(reply[1]))
            if address != self.address:
                self.changes += 1
                self.address = address
            return
        raise RedisConnectionError(f"no sentinel named the primary of {self.service!r}: {', '.join(tried)}")

    async def close(self) -> None:
        for probe in self._probes:
            await probe.close()


class SentinelRouter(FollowingRouter):
    """The store's pipelined path to the primary the sentinels name (store/routing.py's Router)."""

    cluster = False

    def __init__(self, primary: Primary, timeout: float, *, replicas: int = 0):
        super().__init__(primary, timeout, replicas=replicas)
        self.primary = primary

    def node_of(self, key: str | bytes) -> object:
        return self.primary.address

    async def execute(self, *args: Any, key: str | bytes | None = None) -> Any:
        primary = self.primary
        for attempt in range(2):
            address = primary.address
            if address is None or not primary.trusted(address):
                await primary.refresh(wait=True)
                address = primary.address
            if address is None:
                raise RedisConnectionError(f"the sentinels name no primary of {primary.service!r}")
            try:
                return await self._connections.to(address).execute(*args)
            except ResponseError as exc:
                if not str(exc).startswith("READONLY"):
                    raise
                failure: Exception = exc  # a demoted primary refused the write: it was not applied
            except (RedisConnectionError, RedisTimeoutError) as exc:
                failure = exc
            await primary.fresh(primary.failed(address))
            if attempt or primary.address == address:
                raise failure
        raise AssertionError("unreachable")
