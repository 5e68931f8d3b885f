"""Asking where the primaries are (a cluster's slot layout, the sentinels' primary), and when to ask again.

Two rules keep the questions few and the answers safe:
- one question at a time, and at most one per REFRESH_INTERVAL: a thousand calls failing against a dead
  primary cause one question every 0.2 s, not a thousand (redis-py's cluster client re-asked per
  failing command, a storm of topology queries when a node went away);
- a server that failed a call is not used again on an answer older than the failure. A killed primary
  that is restarted at its address comes back for a while as a primary of its own, with old data
  (Sentinel turns it into a replica only seconds later; a cluster node learns its new role by gossip):
  an answer given before the failover still names it, and writes sent there are lost. Measured before
  this rule: nba wrote to a restarted old primary in 2 of 7 Sentinel failovers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Self

from nba.store.multiplex import Endpoint, Multiplexer
from nba.store.routing import each

REFRESH_INTERVAL = 0.2  # seconds: the least time between two questions

Address = tuple[str, int]


class Discovery:
    """The single-flight, rate-limited question and what is known about failed servers."""

    def __init__(self) -> None:
        self.asked_at = float("-inf")  # loop time the question behind the current answer was asked
        self._failed: dict[Address, float] = {}  # server -> loop time a call to it last failed
        self._asking: asyncio.Future[None] | None = None
        self._last = float("-inf")

    async def _ask(self) -> None:
        """Ask once and take the answer (subclasses); raise when nobody answered."""
        raise NotImplementedError

    def endpoint(self, address: Address) -> Endpoint:
        """How to connect to the server at `address` (subclasses)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Close the connections the questions use (subclasses)."""
        raise NotImplementedError

    def failed(self, address: Address) -> float:
        """Record that a call to `address` failed now; the time, for `fresh`."""
        now = asyncio.get_running_loop().time()
        self._failed[address] = now
        return now

    def trusted(self, address: Address) -> bool:
        """Whether the current answer was asked after `address` last failed."""
        return self._failed.get(address, float("-inf")) < self.asked_at

    async def refresh(self, *, wait: bool = False) -> None:
        """Ask, unless a question was asked within REFRESH_INTERVAL: then go on with the answer as it is,
        or with `wait`, ask as soon as the interval is over. A caller that comes while a question is
        asked waits for its answer."""
        loop = asyncio.get_running_loop()
        if self._asking is not None and self._asking.done():  # its waiters all gave up before it ended
            self._asking = None
        if self._asking is None:
            pause = self._last + REFRESH_INTERVAL - loop.time()
            if pause > 0 and not wait:
                return
            self._asking = asyncio.ensure_future(self._timed_ask(max(0.0, pause)))
        asking = self._asking
        try:
            await asyncio.shield(asking)
        finally:
            if asking.done() and self._asking is asking:
                self._asking = None

    async def fresh(self, since: float) -> None:
        """Until the answer comes from a question asked after `since`."""
        while self.asked_at <= since:
            await self.refresh(wait=True)

    async def _timed_ask(self, pause: float) -> None:
        loop = asyncio.get_running_loop()
        if pause:
            await asyncio.sleep(pause)
        started = loop.time()
        try:
            await self._ask()
            self.asked_at = started
        finally:
            self._last = loop.time()


def at(template: Endpoint, address: Address) -> Endpoint:
    """The template's credentials, database and TLS at another server's address."""
    return replace(template, host=address[0], port=address[1], path=None)


class Connections:
    """One pipelined connection per server, made on first use: a router's connections to the primaries
    it has been told of."""

    def __init__(self, endpoint: Callable[[Address], Endpoint], timeout: float, replicas: int):
        self.endpoint = endpoint
        self.timeout = timeout
        self.replicas = replicas
        self._muxes: dict[Address, Multiplexer] = {}

    def to(self, address: Address) -> Multiplexer:
        mux = self._muxes.get(address)
        if mux is None:
            mux = self._muxes[address] = Multiplexer(self.endpoint(address), self.timeout, replicas=self.replicas)
        return mux

    async def close(self) -> None:
        for mux in self._muxes.values():
            await mux.close()
        self._muxes.clear()


class FollowingRouter:
    """What the routers that follow a Discovery share (store/routing.py's Router): a connection per server,
    and more routers to the same servers. Subclasses route each call (`execute`)."""

    def __init__(self, discovery: Discovery, timeout: float, *, replicas: int = 0):
        self.discovery = discovery
        self.timeout = timeout
        self.replicas = replicas
        self._connections = Connections(discovery.endpoint, timeout, replicas)

    async def execute(self, *args: Any, key: str | bytes | None = None) -> Any:
        raise NotImplementedError

    async def execute_all(self, commands: list[tuple[Any, ...]]) -> list[Any | BaseException]:
        return await each(self.execute, commands)

    def blocking(self, seconds: float) -> Self:
        return type(self)(self.discovery, self.timeout + seconds, replicas=self.replicas)

    def confirmed(self, replicas: int) -> Self:
        return type(self)(self.discovery, self.timeout, replicas=replicas)

    async def close(self) -> None:
        await self._connections.close()
        await self.discovery.close()
