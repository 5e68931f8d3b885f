"""A real local Redis Cluster for tests: redis-server child processes on free loopback ports, no mocks.

    cluster = LocalCluster(tmp_path)  # 3 primaries, 1 replica each
    cluster.start()  # 6 processes, `redis-cli --cluster create`, then waits until the cluster is settled
    victim = cluster.primary_of_slot(0)
    cluster.kill(victim)  # SIGKILL
    seconds = cluster.wait_for_failover(victim)  # its replica is promoted
    cluster.restart(victim)  # back on its port, now a replica of the promoted node
    cluster.stop()

A wait that times out raises a ClusterError saying what it still waited for, then the nodes' log tails.
Start and restart nodes from a thread that lives as long as the cluster: when it ends, the nodes it started
die (tests/redis_processes.py says why, and when else they are killed).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

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
    free_port_but,
    server_settings,
)
from tests.redis_processes import command as command
from tests.redis_processes import connect as connect
from tests.redis_processes import execute as execute

SLOTS = 16384

# One slot range as a node sees it: first slot, last slot, the primary's port, its (not failed) replicas' ports.
Range = tuple[int, int, int, tuple[int, ...]]
View = tuple[Range, ...]


class ClusterError(LocalServersError):
    pass


@dataclass(eq=False)
class ClusterNode(ServerNode):
    """One redis-server of the cluster. `process` is the latest one started (it may have exited)."""

    index: int
    host: str
    port: int
    bus_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    node_id: str = ""
    killed_at: float | None = None  # time.monotonic() of the last kill()
    slots_at_kill: frozenset[int] = field(default_factory=frozenset)  # the slots it served when killed

    def __repr__(self) -> str:
        state = "alive" if self.alive() else "down"
        return f"<node {self.index} {self.host}:{self.port} {self.node_id[:8] or '?'} {state}>"


def parse_fields(text: str) -> dict[str, str]:
    """`name:value` lines (CLUSTER INFO, INFO)."""
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def _port_of(address: str) -> int:
    """The client port of a CLUSTER NODES address: ip:port@cport[,hostname]."""
    return int(address.split("@", 1)[0].rsplit(":", 1)[1])


def _owners(view: View) -> list[int]:
    """The owning primary's port of every slot (0: nobody)."""
    owners = [0] * SLOTS
    for first, last, port, _replicas in view:
        owners[first : last + 1] = [port] * (last - first + 1)
    return owners


class LocalCluster(LocalServers[ClusterNode]):
    error = ClusterError
    noun = "cluster"

    def __init__(self, directory: Path, primaries: int = 3, replicas_per_primary: int = 1, node_timeout_ms: int = 2000):
        if primaries < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 primaries")
        if replicas_per_primary < 0:
            raise ValueError("replicas_per_primary must be 0 or more")
        super().__init__(directory)
        self.primary_count = primaries
        self.replicas_per_primary = replicas_per_primary
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[ClusterNode] = []
        self._cli = ""

    # -- addresses ------------------------------------------------------------------------------------

    @property
    def seed_url(self) -> str:
        return self.nodes[0].url

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def live_nodes(self) -> list[ClusterNode]:
        return [node for node in self.nodes if node.alive()]

    # -- start and stop -------------------------------------------------------------------------------

    def _every_node(self) -> list[ClusterNode]:
        return self.nodes

    def _make_nodes(self) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise ClusterError("redis-cli must be installed (apt-get install redis-server)")
        self._cli = cli
        count = self.primary_count * (1 + self.replicas_per_primary)
        self.nodes = [
            ClusterNode(index=i, host=HOST, port=0, bus_port=0, directory=self.directory / f"node-{i}")
            for i in range(count)
        ]

    def _form(self, deadline: float) -> None:
        """Start the nodes, create the cluster, and wait until every node says cluster_state:ok, all agree
        on who serves which slots, every primary has its replicas and every replica's link is up."""
        self._launch(*self.nodes, deadline=deadline)
        self._create(self._cli, deadline)
        for node in self.nodes:
            node.node_id = str(command(node, "CLUSTER", "MYID"))
        self._poll(self._formation_problem, deadline, "the cluster did not settle after its creation")

    def _pick_ports(self, node: ClusterNode, taken: set[int]) -> None:
        node.port = free_port_but(taken)
        node.bus_port = free_port_but(taken)  # not port + 10000, which may be taken or beyond 65535

    def _config(self, node: ClusterNode) -> str:
        return config_text(
            [
                *server_settings(node),
                *data_settings(),
                ("cluster-port", node.bus_port),
                ("cluster-enabled", "yes"),
                ("cluster-config-file", "nodes.conf"),
                ("cluster-node-timeout", self.node_timeout_ms),
                ("cluster-replica-no-failover", "no"),
                ("cluster-require-full-coverage", "no"),  # the other primaries' slots answer while one is down
                ("cluster-allow-reads-when-down", "no"),
            ]
        )

    def _create(self, cli: str, deadline: float) -> None:
        args = [
            cli,
            "--cluster",
            "create",
            *(f"{node.host}:{node.port}" for node in self.nodes),
            "--cluster-replicas",
            str(self.replicas_per_primary),
            "--cluster-yes",
        ]
        try:
            result = subprocess.run(
                args, capture_output=True, text=True, timeout=max(deadline - time.monotonic(), 1.0), check=False
            )
        except subprocess.TimeoutExpired as e:
            raise ClusterError(f"redis-cli --cluster create did not finish in time\n{self._log_tails()}") from e
        output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)  # without colours
        if result.returncode != 0 or f"All {SLOTS} slots covered" not in output:
            raise ClusterError(
                f"redis-cli --cluster create failed (exit {result.returncode}):\n{output}\n{self._log_tails()}"
            )

    # -- looking at the cluster -----------------------------------------------------------------------

    def view(self, node: ClusterNode) -> View:
        """CLUSTER SLOTS as `node` sees it, by port (a replica marked failed is not listed)."""
        ranges: list[Range] = []
        for entry in command(node, "CLUSTER", "SLOTS"):
            first, last, primary, *replicas = entry
            ranges.append((int(first), int(last), int(primary[1]), tuple(sorted(int(r[1]) for r in replicas))))
        return tuple(sorted(ranges))

    def _views(self) -> dict[ClusterNode, View]:
        return {node: self.view(node) for node in self.live_nodes()}

    def _agreed_view(self) -> View:
        """The view most live nodes share."""
        views = Counter(self._views().values())
        if not views:
            raise ClusterError("no node of the cluster is running")
        return views.most_common(1)[0][0]

    def primary_of_slot(self, slot: int) -> ClusterNode:
        """The node serving `slot` in the view most live nodes share (a killed primary stays the owner
        until its replica is promoted)."""
        owner = _owners(self._agreed_view())[slot]
        if not owner:
            raise ClusterError(f"no primary serves slot {slot}")
        return self.node_at(owner)

    def primaries(self) -> list[ClusterNode]:
        """The nodes serving slots in the view most live nodes share, by their first slot."""
        ports = dict.fromkeys(port for _first, _last, port, _replicas in self._agreed_view())
        return [self.node_at(port) for port in ports]

    def replica_of(self, node: ClusterNode) -> ClusterNode:
        """A live replica of `node` (the one on the lowest port), as CLUSTER NODES of a live node says
        (`node` itself when it runs)."""
        witnesses = [node] if node.alive() else self.live_nodes()[:1]
        if not witnesses:
            raise ClusterError("no node of the cluster is running")
        ports = []
        for line in str(command(witnesses[0], "CLUSTER", "NODES")).splitlines():
            _node_id, address, flags, primary_id, *_rest = line.split()
            if primary_id == node.node_id and "slave" in flags.split(",") and "fail" not in flags.split(","):
                ports.append(_port_of(address))
        live = [self.node_at(port) for port in sorted(ports) if self.node_at(port).alive()]
        if not live:
            raise ClusterError(f"{node!r} has no live replica")
        return live[0]

    # -- waiting --------------------------------------------------------------------------------------

    def _settled_problem(self) -> str | None:
        """What keeps the cluster from being settled: every live node says cluster_state:ok, all see the
        same slots and replicas, every slot is served by a live primary, no view lists a dead node, and
        every live replica's link to its primary is up."""
        views = {}
        for node in self.live_nodes():
            state = parse_fields(str(command(node, "CLUSTER", "INFO"))).get("cluster_state")
            if state != "ok":
                return f"{node!r} says cluster_state:{state}"
            views[node] = self.view(node)
        if not views:
            return "no node is running"
        distinct = set(views.values())
        if len(distinct) > 1:
            return "the nodes disagree: " + "; ".join(f"{node!r} sees {view}" for node, view in views.items())
        (view,) = distinct
        owners = _owners(view)
        if 0 in owners:
            return f"slot {owners.index(0)} is not served"
        alive = {node.port for node in views}
        listed = {port for _first, _last, primary, replicas in view for port in (primary, *replicas)}
        if listed - alive:
            dead = sorted(listed - alive)  # a primary not replaced yet, or a replica not marked failed yet
            return f"the cluster still lists the dead nodes on the ports {dead}"
        for node in views:
            role = self.role(node)
            if role.get("role") == "slave" and role.get("master_link_status") != "up":
                return f"{node!r} replicates port {role.get('master_port')}, link {role.get('master_link_status')}"
        return None

    def _formation_problem(self) -> str | None:
        """Settled, with every node in its place: the primaries and each one's replicas."""
        problem = self._settled_problem()
        if problem is not None:
            return problem
        view = self.view(self.nodes[0])
        primaries = {primary: replicas for _first, _last, primary, replicas in view}
        if len(primaries) != self.primary_count:
            return f"{len(primaries)} primaries serve slots, not {self.primary_count}"
        for primary, replicas in primaries.items():
            if len(replicas) != self.replicas_per_primary:
                return f"the primary on port {primary} has the replicas {replicas}"
            for port in replicas:
                if int(self.role(self.node_at(port)).get("master_port", 0)) != primary:
                    return f"the replica on port {port} does not replicate port {primary} yet"
        return None

    def wait_for_state_ok(self, timeout: float = 60.0) -> None:
        """Until the cluster is settled: every live node reports cluster_state:ok, all live nodes agree on
        who serves which slot, every slot has a live primary, the dead nodes are marked failed, and every
        live replica's link is up."""
        self._poll(self._settled_problem, time.monotonic() + timeout, "the cluster did not settle")

    # -- faults ---------------------------------------------------------------------------------------

    def _before_kill(self, node: ClusterNode) -> None:
        """`kill` has the node remember the slots it served."""
        try:
            owners = _owners(self._agreed_view())
            node.slots_at_kill = frozenset(slot for slot, port in enumerate(owners) if port == node.port)
        except (redis.RedisError, OSError, ClusterError):
            node.slots_at_kill = frozenset()

    def wait_for_failover(self, old_primary: ClusterNode, timeout: float = 30.0) -> float:
        """Until some live node sees a live primary other than `old_primary` serving each of the slots
        `old_primary` served when it was killed. Returns the seconds since the kill (since this call when
        `old_primary` was not killed by `kill`)."""
        since = old_primary.killed_at if old_primary.killed_at is not None else time.monotonic()
        slots = old_primary.slots_at_kill
        if not slots:
            raise ClusterError(f"{old_primary!r} served no slots when it was killed")

        def problem() -> str | None:
            alive = {node.port for node in self.live_nodes()}
            for node in self.live_nodes():
                owners = _owners(self.view(node))
                new = {owners[slot] for slot in slots}
                if new <= alive - {old_primary.port}:
                    return None
            return f"the slots of {old_primary!r} have no new live primary in any view yet"

        self._poll(problem, time.monotonic() + timeout, f"no replica of {old_primary!r} was promoted")
        return time.monotonic() - since

    def restart(self, node: ClusterNode, timeout: float = 60.0) -> None:
        """Start `node` again on its port and directory. Its nodes.conf makes it rejoin: as a replica of
        the node promoted meanwhile. Waits until it answers, the cluster is settled with it (wait_for_state_ok)
        and, as a replica, its link is up."""
        deadline = time.monotonic() + timeout
        self._respawn(node, deadline)

        def problem() -> str | None:
            if settled := self._settled_problem():
                return settled
            listed = {port for *_slots, primary, replicas in self.view(node) for port in (primary, *replicas)}
            return None if node.port in listed else f"{node!r} is not in the cluster's view yet"

        self._poll(problem, deadline, f"{node!r} did not rejoin the cluster")

    # -- data -----------------------------------------------------------------------------------------

    def flushall(self, timeout: float = 30.0) -> None:
        """FLUSHALL on every live primary, then WAIT until its connected replicas have it too."""
        deadline = time.monotonic() + timeout
        for node in self.live_nodes():
            if self.role(node).get("role") == "master":
                self._flush(node, deadline)

    def migrate_slot(self, slot: int, to_node: ClusterNode, batch: int = 100, timeout: float = 60.0) -> None:
        """Reshard one slot with its keys to the primary `to_node`, as redis-cli --cluster reshard does:
        SETSLOT IMPORTING on the target, MIGRATING on the source, MIGRATE ... KEYS in batches, then SETSLOT
        NODE on the target, the source and the other primaries. Clients keep working meanwhile (ASK
        redirections). Waits until every live node sees `to_node` serving the slot."""
        deadline = time.monotonic() + timeout
        source = self.primary_of_slot(slot)
        if source is to_node:
            return
        if self.role(to_node).get("role") != "master":
            raise ValueError(f"{to_node!r} is not a primary")
        command(to_node, "CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
        command(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", to_node.node_id)
        while True:
            self._move_keys(slot, source, to_node, batch, deadline)
            try:  # the target first: it must own the slot before the source stops redirecting to it
                command(to_node, "CLUSTER", "SETSLOT", slot, "NODE", to_node.node_id)
                command(source, "CLUSTER", "SETSLOT", slot, "NODE", to_node.node_id)
                break
            except redis.ResponseError as e:
                # "still hold keys": a key came in after the last batch, it goes too
                if "hold keys" not in str(e) or time.monotonic() > deadline:
                    raise
        for node in self.live_nodes():
            if node not in (source, to_node) and self.role(node).get("role") == "master":
                command(node, "CLUSTER", "SETSLOT", slot, "NODE", to_node.node_id)

        def problem() -> str | None:
            for node in self.live_nodes():
                owner = _owners(self.view(node))[slot]
                if owner != to_node.port:
                    return f"{node!r} sees port {owner} serving slot {slot}"
            return None

        self._poll(problem, deadline, f"slot {slot} did not move to {to_node!r}")

    @staticmethod
    def _move_keys(slot: int, source: ClusterNode, target: ClusterNode, batch: int, deadline: float) -> None:
        with connect(source, decode=False, timeout=30.0) as client:  # keys as bytes: any key name moves
            while keys := execute(client, "CLUSTER", "GETKEYSINSLOT", slot, batch):
                execute(client, "MIGRATE", target.host, target.port, "", 0, 10000, "KEYS", *keys)
                if time.monotonic() > deadline:
                    raise ClusterError(f"the keys of slot {slot} did not move to {target!r} in time")
