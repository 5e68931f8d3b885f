"""A real local Redis Sentinel deployment for tests: redis-server child processes on free loopback ports, no mocks.

    deployment = LocalSentinel(tmp_path)  # a primary, 1 replica, 3 sentinels watching the service "nba"
    deployment.start()  # the data nodes, then the sentinels; waits until everyone knows everyone
    old = deployment.primary()  # the node the sentinels name
    deployment.kill(old)  # SIGKILL
    seconds = deployment.wait_for_failover(old)  # the sentinels promote its replica
    deployment.restart(old)  # back on its port; the sentinels turn it into a replica of the promoted node
    deployment.stop()

Clients find the primary through `deployment.sentinel_addresses()` (redis-py's Sentinel) or
`deployment.sentinel_url` (redis+sentinel://[:password@]127.0.0.1:<port>,.../<service>). With a password
the data nodes require it (requirepass, and masterauth for replication) and the sentinels use it for them
(sentinel auth-pass); the sentinels themselves take connections without one.

A wait that times out raises a SentinelError saying what it still waited for, then the nodes' log tails.
Start and restart nodes from a thread that lives as long as the deployment: when it ends, the nodes it
started die (tests/redis_processes.py says why, and when else they are killed).

How long things take, with the default timings: the sentinels see a primary down after down_after_ms
(3 s: with 1 s, a two-core machine busy with other work once starved the promoted primary for a second
and the sentinels failed back over to the old one in the middle of a test), agree and elect a leader
within about a second or two more, then promote a replica; an election
that splits the votes is tried again only after 2 x failover_timeout_ms (20 s). A restarted old primary
comes back as a primary with its old data and stays one until the sentinels have seen it so for 8 s
(Redis' fixed SENTINEL_PUBLISH_PERIOD x 4), then they send it REPLICAOF: clients that ask the sentinels
never write to it, a client that kept its address could.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis

# `name as name`: re-exported, for the modules that import them from here
from tests.redis_processes import HOST as HOST
from tests.redis_processes import POLL as POLL
from tests.redis_processes import PORT_ATTEMPTS as PORT_ATTEMPTS
from tests.redis_processes import (
    LocalServers,
    LocalServersError,
    ServerNode,
    config_text,
    data_settings,
    server_settings,
)
from tests.redis_processes import command as command
from tests.redis_processes import connect as connect
from tests.redis_processes import execute as execute

DOWN_FLAGS = frozenset({"s_down", "o_down", "disconnected"})  # flags of an instance a sentinel cannot use
DATA = "data"
SENTINEL = "sentinel"


class SentinelError(LocalServersError):
    pass


@dataclass(eq=False)
class Node(ServerNode):
    """One redis-server of the deployment: a data node (primary or replica: that changes with failovers)
    or a sentinel. `process` is the latest one started (it may have exited)."""

    kind: str  # DATA or SENTINEL
    index: int
    host: str
    port: int
    directory: Path
    password: str | None = None  # what a client of this node must give (never on a sentinel)
    process: subprocess.Popen[bytes] | None = None
    killed_at: float | None = None  # time.monotonic() of the last kill()
    primary_when_killed: bool | None = None  # whether the sentinels named it then (None: not known)

    @property
    def is_sentinel(self) -> bool:
        return self.kind == SENTINEL

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def config_file(self) -> Path:
        """The sentinels rewrite theirs (their state), and the data nodes theirs (REPLICAOF)."""
        return self.directory / ("sentinel.conf" if self.is_sentinel else "redis.conf")

    def __repr__(self) -> str:
        state = "alive" if self.alive() else "down"
        return f"<{self.kind} {self.index} {self.host}:{self.port} {state}>"


def pairs(entry: dict[Any, Any] | list[Any]) -> dict[str, str]:
    """One instance of SENTINEL REPLICAS or SENTINELS: a map (RESP3) or a flat [name, value, ...] list (RESP2)."""
    items = entry.items() if isinstance(entry, dict) else zip(entry[::2], entry[1::2], strict=True)
    return {str(name): str(value) for name, value in items}


def flags(entry: dict[str, str]) -> set[str]:
    return set(entry.get("flags", "").split(","))


def _quoted(value: str) -> str:
    """A config file value that may hold spaces, quotes or backslashes (a password)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class LocalSentinel(LocalServers[Node]):
    error = SentinelError
    noun = "deployment"

    def __init__(
        self,
        directory: Path,
        service: str = "nba",
        replicas: int = 1,
        sentinels: int = 3,
        down_after_ms: int = 3000,
        failover_timeout_ms: int = 10000,
        password: str | None = None,
    ):
        if replicas < 0:
            raise ValueError("replicas must be 0 or more")
        if sentinels < 1:
            raise ValueError("sentinels must be 1 or more")
        if not service or any(c.isspace() for c in service) or "/" in service:
            raise ValueError(f"unusable service name {service!r}")
        super().__init__(directory)
        self.service = service
        self.replica_count = replicas
        self.sentinel_count = sentinels
        self.quorum = sentinels // 2 + 1
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.password = password or None
        self.data_nodes: list[Node] = []  # the first one starts as the primary
        self.sentinel_nodes: list[Node] = []

    # -- addresses ------------------------------------------------------------------------------------

    @property
    def nodes(self) -> list[Node]:
        return [*self.data_nodes, *self.sentinel_nodes]

    @property
    def url(self) -> str:
        """The URL of the current primary (the node the sentinels name now)."""
        return self.primary().url

    @property
    def sentinel_url(self) -> str:
        """redis+sentinel://[:password@]127.0.0.1:<port>,127.0.0.1:<port>,.../<service>; the password is
        the data nodes' (the sentinels take none)."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinel_addresses())
        return f"redis+sentinel://{auth}{hosts}/{quote(self.service, safe='')}"

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """(host, port) of every sentinel, running or not: what redis-py's Sentinel takes."""
        return [node.address for node in self.sentinel_nodes]

    def data_node_at(self, port: int) -> Node:
        node = self.node_at(port)
        if node.is_sentinel:
            raise LookupError(f"{node!r} is a sentinel, not a data node")
        return node

    def live_sentinels(self) -> list[Node]:
        return [node for node in self.sentinel_nodes if node.alive()]

    def live_data_nodes(self) -> list[Node]:
        return [node for node in self.data_nodes if node.alive()]

    # -- start and stop -------------------------------------------------------------------------------

    def _every_node(self) -> list[Node]:
        return self.nodes

    def _make_nodes(self) -> None:
        self.data_nodes = [
            Node(DATA, i, HOST, 0, self.directory / f"data-{i}", self.password) for i in range(1 + self.replica_count)
        ]
        self.sentinel_nodes = [
            Node(SENTINEL, i, HOST, 0, self.directory / f"sentinel-{i}") for i in range(self.sentinel_count)
        ]

    def _form(self, deadline: float) -> None:
        """Start the primary, its replicas and, once every replica's link is up, the sentinels; then wait
        until every sentinel names the primary, lists the replicas (not down) and the other sentinels,
        and says a quorum and a failover majority can be reached."""
        primary, *replicas = self.data_nodes
        self._launch(primary, deadline=deadline)
        self._launch(*replicas, deadline=deadline)
        # the sentinels learn the replicas from the primary's INFO: they must be there first
        self._poll(lambda: self._replicas_problem(primary), deadline, "the replicas did not link up")
        self._launch(*self.sentinel_nodes, deadline=deadline)
        self._poll(self._formation_problem, deadline, "the sentinels did not settle after their start")

    def _server_args(self, node: Node) -> list[str]:
        return ["--sentinel"] if node.is_sentinel else []

    def _config(self, node: Node) -> str:
        settings = server_settings(node)
        if node.is_sentinel:
            name = self.service
            settings += [
                ("sentinel announce-ip", node.host),
                ("sentinel monitor", f"{name} {HOST} {self.data_nodes[0].port} {self.quorum}"),
                ("sentinel down-after-milliseconds", f"{name} {self.down_after_ms}"),
                ("sentinel failover-timeout", f"{name} {self.failover_timeout_ms}"),
                ("sentinel parallel-syncs", f"{name} 1"),
            ]
            if self.password:
                settings.append(("sentinel auth-pass", f"{name} {_quoted(self.password)}"))
        else:
            settings += [*data_settings(), ("replica-announce-ip", node.host)]
            if node is not self.data_nodes[0]:
                settings.append(("replicaof", f"{HOST} {self.data_nodes[0].port}"))
            if self.password:
                settings += [("requirepass", _quoted(self.password)), ("masterauth", _quoted(self.password))]
        return config_text(settings)

    # -- looking at the deployment --------------------------------------------------------------------

    def named_primary(self, sentinel: Node) -> int:
        """The port of the primary `sentinel` names (SENTINEL GET-MASTER-ADDR-BY-NAME)."""
        answer = command(sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
        if not answer:
            raise SentinelError(f"{sentinel!r} does not know the service {self.service!r}")
        host, port = answer
        if host != HOST:
            raise SentinelError(f"{sentinel!r} names the primary {host}:{port}, not on {HOST}")
        return int(port)

    def sentinel_view(self, sentinel: Node, what: str) -> list[dict[str, str]]:
        """SENTINEL REPLICAS or SENTINELS of the service as `sentinel` sees them: one dict an instance
        (ip, port, flags, master-link-status, ...)."""
        return [pairs(entry) for entry in command(sentinel, "SENTINEL", what, self.service)]

    def primary(self) -> Node:
        """The data node most live sentinels name as the primary (right after a failover some may still
        name the old one for a moment: `wait_for_failover` waits until all agree)."""
        named: Counter[int] = Counter()
        problems = []
        for sentinel in self.live_sentinels():
            try:
                named[self.named_primary(sentinel)] += 1
            except (redis.RedisError, OSError, SentinelError) as e:
                problems.append(f"{sentinel!r}: {type(e).__name__}: {e}")
        if not named:
            raise SentinelError(f"no sentinel names a primary: {problems or 'no sentinel is running'}")
        return self.data_node_at(named.most_common(1)[0][0])

    def replicas_of_primary(self) -> list[Node]:
        """The live data nodes that say they replicate the current primary (link up or not)."""
        primary = self.primary()
        replicas = []
        for node in self.live_data_nodes():
            if node is primary:
                continue
            with contextlib.suppress(redis.RedisError, OSError):
                role = self.role(node)
                if role.get("role") == "slave" and int(role.get("master_port", 0)) == primary.port:
                    replicas.append(node)
        return replicas

    # -- waiting --------------------------------------------------------------------------------------

    def _replicas_problem(self, primary: Node) -> str | None:
        """Every live data node but `primary` replicates it with its link up."""
        for node in self.live_data_nodes():
            if node is primary:
                continue
            role = self.role(node)
            if role.get("role") != "slave":
                return f"{node!r} is a {role.get('role')}, not a replica"
            if int(role.get("master_port", 0)) != primary.port:
                return f"{node!r} replicates port {role.get('master_port')}, not {primary!r}"
            if role.get("master_link_status") != "up":
                return f"{node!r}'s link to {primary!r} is {role.get('master_link_status')}"
        return None

    def _settled_problem(self) -> str | None:
        """What keeps the deployment from being settled: all live sentinels name the same live primary,
        which says it is one; each lists every live replica (not down) and the other sentinels (the live
        ones not down); every live replica replicates the primary with its link up."""
        sentinels = self.live_sentinels()
        if not sentinels:
            return "no sentinel is running"
        named = {sentinel: self.named_primary(sentinel) for sentinel in sentinels}
        if len(set(named.values())) > 1:
            return "the sentinels disagree: " + ", ".join(f"{s!r} names port {p}" for s, p in named.items())
        primary = self.data_node_at(named[sentinels[0]])
        if not primary.alive():
            return f"the sentinels name {primary!r}"
        if (role := self.role(primary).get("role")) != "master":
            return f"the sentinels name {primary!r}, which is a {role}"
        replicas = [node for node in self.live_data_nodes() if node is not primary]
        live_sentinel_ports = {sentinel.port for sentinel in sentinels}
        for sentinel in sentinels:
            known = {int(entry["port"]): entry for entry in self.sentinel_view(sentinel, "REPLICAS")}
            for node in replicas:
                if node.port not in known:
                    return f"{sentinel!r} does not list the replica {node!r}"
                if down := flags(known[node.port]) & DOWN_FLAGS:
                    return f"{sentinel!r} sees the replica {node!r} as {','.join(sorted(down))}"
            others = self.sentinel_view(sentinel, "SENTINELS")
            if len(others) != self.sentinel_count - 1:
                return f"{sentinel!r} knows {len(others)} other sentinels, not {self.sentinel_count - 1}"
            for entry in others:
                if int(entry["port"]) in live_sentinel_ports and (down := flags(entry) & DOWN_FLAGS):
                    return f"{sentinel!r} sees the sentinel on port {entry['port']} as {','.join(sorted(down))}"
        return self._replicas_problem(primary)

    def _formation_problem(self) -> str | None:
        """Settled as started: the first data node is the primary, every sentinel says a quorum and a
        failover majority can be reached."""
        if problem := self._settled_problem():
            return problem
        for sentinel in self.sentinel_nodes:
            if self.named_primary(sentinel) != self.data_nodes[0].port:
                return f"{sentinel!r} does not name {self.data_nodes[0]!r}"
            answer = str(command(sentinel, "SENTINEL", "CKQUORUM", self.service))
            if not answer.startswith("OK"):
                return f"{sentinel!r}: SENTINEL CKQUORUM says {answer}"
        return None

    def wait_until_settled(self, timeout: float = 60.0) -> None:
        """Until all live sentinels name the same live primary, which says it is one; each lists every
        live replica (not down) and knows the other sentinels; every live replica's link to the primary
        is up."""
        self._poll(self._settled_problem, time.monotonic() + timeout, "the deployment did not settle")

    # -- faults ---------------------------------------------------------------------------------------

    def _before_kill(self, node: Node) -> None:
        """`kill` (of a data node or a sentinel) has a data node remember whether it was the primary."""
        node.primary_when_killed = None
        if not node.is_sentinel:
            with contextlib.suppress(redis.RedisError, OSError, LookupError, SentinelError):
                node.primary_when_killed = self.primary() is node

    def wait_for_failover(self, old_primary: Node, timeout: float = 60.0) -> float:
        """Until every live sentinel names the same live data node other than `old_primary`, and that node
        says role:master. Returns the seconds since the kill (since this call when `old_primary` was not
        killed by `kill`). A SentinelError at once when the sentinels named another primary at the kill."""
        if old_primary.primary_when_killed is False:
            raise SentinelError(f"{old_primary!r} was not the primary when it was killed")
        since = old_primary.killed_at if old_primary.killed_at is not None else time.monotonic()

        def problem() -> str | None:
            sentinels = self.live_sentinels()
            if not sentinels:
                return "no sentinel is running"
            named = {self.named_primary(sentinel) for sentinel in sentinels}
            if len(named) > 1:
                return f"the sentinels name different primaries: ports {sorted(named)}"
            (port,) = named
            new = self.data_node_at(port)
            if new is old_primary:
                return f"the sentinels still name {old_primary!r}"
            if not new.alive():
                return f"the sentinels name {new!r}"
            role = self.role(new).get("role")
            return None if role == "master" else f"the sentinels name {new!r}, which is still a {role}"

        self._poll(problem, time.monotonic() + timeout, f"the sentinels did not replace {old_primary!r}")
        return time.monotonic() - since

    def restart(self, node: Node, timeout: float = 60.0) -> None:
        """Start `node` again on its port and directory (its data, or a sentinel's rewritten config).
        A data node that was a primary comes back as one and the sentinels make it a replica of the
        node they promoted meanwhile. Waits until it answers and the deployment is settled with it
        (`wait_until_settled`: a data node replicates the primary with its link up)."""
        deadline = time.monotonic() + timeout
        self._respawn(node, deadline)
        self._poll(self._settled_problem, deadline, f"the deployment did not settle with {node!r} back")

    # -- data -----------------------------------------------------------------------------------------

    def flushall(self, timeout: float = 30.0) -> None:
        """FLUSHALL on the primary, then WAIT until its connected replicas have it too."""
        self._flush(self.primary(), time.monotonic() + timeout)
