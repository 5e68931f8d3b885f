"""The pipelined path on Redis Cluster: a slot table, one pipelined connection per primary, redirects.

Every customer's keys share one hash tag, so each call of the hot path goes whole to one primary: the
slot of its key picks the connection (store/multiplex.py), and calls for different primaries leave in
the same event-loop iteration, in parallel. The slot table comes from CLUSTER SLOTS and is corrected
by the cluster's answers:
- MOVED (a slot has a new owner: resharding, failover): the slot is re-pointed at once and the whole
  table refreshed in the background when the new owner was unknown;
- ASK (a slot half-way through migration): that one call goes to the importing node after ASKING,
  adjacent on its connection;
- TRYAGAIN (a script whose keys are split between the two nodes of a migrating slot: until the
  migration ends for a customer whose tombstone key, which rarely exists, is declared with its keys)
  and CLUSTERDOWN (no primary yet): pauses of RETRY_PAUSE, until the call's timeout has passed;
- a lost connection (the primary died): the table is refreshed and the call sent again only if the
  slot now has another primary; otherwise it fails at once (decide degrades, events answer 503).
When and how often the layout is asked again: store/discovery.py.

The scripts and commands are safe to send twice (store/scripts.py), so a call retried after its
connection broke cannot count anything twice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.exceptions import ClusterDownError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from nba.store.discovery import Address, Discovery, FollowingRouter, at
from nba.store.multiplex import Endpoint, Multiplexer
from nba.store.routing import key_slot, routing_key

log = logging.getLogger(__name__)

SLOTS = 16384
MAX_ATTEMPTS = 5  # redirects and reconnections of one call
RETRY_PAUSE = 0.05  # seconds before trying again after TRYAGAIN or CLUSTERDOWN


def parse_address(text: str) -> Address:
    host, _, port = text.rpartition(":")
    return host, int(port)


class Topology(Discovery):
    """Which primary serves each slot, as the cluster last said; shared by a store's routers."""

    def __init__(self, seeds: list[Endpoint], timeout: float):
        super().__init__()
        if not seeds:
            raise ValueError("a Redis Cluster needs at least one seed node")
        self.seeds = seeds
        self.timeout = timeout
        self.slots: list[Address | None] = [None] * SLOTS
        self.nodes: list[Address] = []  # every node the last layout named, primaries first
        self.changes = 0  # counts the refreshes that changed the table (tests, metrics)
        self._probes: dict[Address, Multiplexer] = {}

    def endpoint(self, address: Address) -> Endpoint:
        """The seeds' credentials and TLS at another node's address."""
        return at(self.seeds[0], address)

    def primaries(self) -> set[Address]:
        return {a for a in self.slots if a is not None}

    def moved(self, slot: int, address: Address) -> None:
        known = address in self.primaries()
        self.slots[slot] = address
        if not known:  # a new primary (failover): other slots have probably moved with it
            task = asyncio.ensure_future(self.refresh())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # failures are seen by callers

    async def _ask(self) -> None:
        tried: list[str] = []
        candidates = list(dict.fromkeys([*self.primaries(), *((s.host, s.port) for s in self.seeds), *self.nodes]))
        for address in candidates:
            probe = self._probes.get(address)
            if probe is None:
                probe = self._probes[address] = Multiplexer(self.endpoint(address), min(self.timeout, 1.0))
            try:
                layout = await probe.execute("CLUSTER", "SLOTS")
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                tried.append(f"{address[0]}:{address[1]} ({exc.__class__.__name__})")
                continue
            except ResponseError as exc:
                if "cluster support disabled" in str(exc):
                    raise RedisConnectionError(
                        f"{address[0]}:{address[1]} is not a Redis Cluster node (cluster support disabled)"
                    ) from None
                tried.append(f"{address[0]}:{address[1]} ({exc})")
                continue
            if self._apply(layout, address):
                return
            tried.append(f"{address[0]}:{address[1]} (serves no slots)")
        raise RedisConnectionError(f"no node of the Redis Cluster told its slot layout: {', '.join(tried)}")

    def _apply(self, layout: list[Any], asked: Address) -> bool:
        slots: list[Address | None] = [None] * SLOTS
        primaries: list[Address] = []
        others: list[Address] = []
        for start, end, primary, *replicas in layout:
            address = self._node_address(primary, asked)
            primaries.append(address)
            others += [self._node_address(r, asked) for r in replicas]
            for slot in range(int(start), int(end) + 1):
                slots[slot] = address
        if not primaries:
            return False
        if slots != self.slots:
            self.changes += 1
            if any(self.slots):
                log.info("Redis Cluster layout changed: primaries %s", sorted(set(primaries)))
        self.slots = slots
        self.nodes = list(dict.fromkeys(primaries + others))
        return True

    @staticmethod
    def _node_address(node: list[Any], asked: Address) -> Address:
        host = node[0].decode() if isinstance(node[0], bytes) else str(node[0])
        # an empty or unknown host means "the address you reached me on" (CLUSTER SLOTS' convention)
        return (host or asked[0]) if host != "?" else asked[0], int(node[1])

    async def close(self) -> None:
        for probe in self._probes.values():
            await probe.close()
        self._probes.clear()


class ClusterRouter(FollowingRouter):
    """The store's pipelined path on a Redis Cluster (store/routing.py's Router)."""

    cluster = True

    def __init__(self, topology: Topology, timeout: float, *, replicas: int = 0):
        super().__init__(topology, timeout, replicas=replicas)
        self.topology = topology

    def node_of(self, key: str | bytes) -> object:
        return self.topology.slots[key_slot(key)]

    async def execute(self, *args: Any, key: str | bytes | None = None) -> Any:
        slot = key_slot(routing_key(args) if key is None else key)
        asking: Address | None = None
        failure: Exception | None = None
        topology = self.topology
        give_up = asyncio.get_running_loop().time() + self.timeout
        attempt = 0
        while attempt < MAX_ATTEMPTS:
            attempt += 1
            address = asking or topology.slots[slot]
            if address is None or not topology.trusted(address):
                await topology.refresh(wait=True)
                address = asking or topology.slots[slot]
                if address is None:
                    raise ClusterDownError(f"CLUSTERDOWN slot {slot} has no primary in nba's view of the cluster")
            mux = self._connections.to(address)
            try:
                if asking is not None:
                    return (await mux.execute_adjacent(("ASKING",), args))[1]
                return await mux.execute(*args)
            except ResponseError as exc:
                text = str(exc)
                failure = exc
                if text.startswith("MOVED "):
                    _, moved_slot, target = text.split()
                    topology.moved(int(moved_slot), parse_address(target))
                    asking = None
                elif text.startswith("ASK "):
                    asking = parse_address(text.split()[2])
                elif text.startswith(("TRYAGAIN", "CLUSTERDOWN")):
                    asking = None
                    if text.startswith("CLUSTERDOWN"):
                        await topology.refresh()
                    if asyncio.get_running_loop().time() + RETRY_PAUSE < give_up:
                        attempt -= 1  # waiting out a migration or an election costs time, not tries
                        await asyncio.sleep(RETRY_PAUSE)
                else:
                    raise
            except (RedisConnectionError, RedisTimeoutError):
                # the node is gone or stuck: worth another try only if the slot has moved since
                await topology.fresh(topology.failed(address))
                if asking is not None or topology.slots[slot] == address:
                    raise
                failure = None
        if failure is not None:
            raise failure
        raise RedisConnectionError(f"slot {slot}: no answer after {MAX_ATTEMPTS} tries")
