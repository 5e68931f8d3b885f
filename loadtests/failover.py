"""Kill Redis Cluster primaries (or a Sentinel-watched primary) with kill -9 while decides and events flow
through `nba serve`, and count what the channels saw and what survived.

Starts a real local Redis Cluster (3 primaries, 3 replicas, cluster-node-timeout 2,000 ms), or with
`--sentinel` a primary, a replica and 3 sentinels (down-after-milliseconds 2,000), and one
`nba serve` on it with the durability asked for, puts profiles for the customers, then per failover:
traffic (decides, and events answering them, from concurrent clients) runs, the primary of the first
customer's slot gets SIGKILL, the cluster promotes its replica, the killed node is started again (it
rejoins as a replica: what an operator's supervisor does), traffic goes on for a few seconds. Events
answered 503 are sent again after their Retry-After, as a channel should; every event answered 202 is
remembered. At the end:
- failover time: from the kill to the first decision for a customer of that primary that was not
  degraded after the last one that was;
- every event answered 202 must be in its customer's history exactly once (GET /v1/customers/{id}),
  and the event counts of /v1/actions/stats must add up to the events answered 202, once the learner
  caught up;
- no answer other than 200/202 and 503 with Retry-After.

    .venv/bin/python -m loadtests.failover --failovers 5 --durability replica
    .venv/bin/python -m loadtests.failover --failovers 5 --durability memory
    .venv/bin/python -m loadtests.failover --failovers 5 --durability replica --sentinel
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import redis

from nba.runtime.embedded_redis import free_port
from nba.store.keys import customer_slot
from tests.api.helpers import CROSSSELL_MOBILE as PROFILE  # eligible for several actions of RULES
from tests.redis_cluster import LocalCluster
from tests.redis_sentinel import LocalSentinel

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "tests" / "fixtures" / "rules"


@dataclass
class Seen:
    """What the channels saw."""

    decides: list[tuple[float, str, bool]] = field(default_factory=list)  # (monotonic time, customer, degraded)
    # event id -> (customer, action, type) of the events answered 202
    accepted: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)  # answers outside 200/202/503-with-Retry-After

    def answer(self, status: int, headers: Any, what: str) -> None:
        self.statuses[status] += 1
        if status in (200, 202):
            return
        if status == 503 and headers.get("Retry-After"):
            return
        self.unexpected.append(f"{what}: {status}")


PENDING = 32  # unacknowledged event batches per client (each re-sent after its Retry-After)


class Traffic:
    """Closed-loop clients: each decides for a random customer and answers the decision with events."""

    def __init__(self, base: str, customers: list[str], clients: int, seed: int = 1):
        self.base = base
        self.customers = customers
        self.clients = clients
        self.seen = Seen()
        self.rng = random.Random(seed)
        self.ids = itertools.count()
        self._stop = asyncio.Event()

    async def run(self, seconds: float) -> None:
        """`seconds` of traffic, then until every event batch sent is acknowledged."""
        self._stop.clear()
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            workers = [asyncio.ensure_future(self._client(session)) for _ in range(self.clients)]
            await asyncio.sleep(seconds)
            self._stop.set()
            await asyncio.gather(*workers)

    async def _client(self, session: aiohttp.ClientSession) -> None:
        # a channel keeps deciding while its events wait to be acknowledged: they are re-sent in the
        # background, at most PENDING batches per client (then it waits for the oldest)
        pending: list[asyncio.Future[None]] = []
        try:
            await self._decide_and_answer(session, pending)
        finally:
            await asyncio.gather(*pending)

    async def _decide_and_answer(self, session: aiohttp.ClientSession, pending: list[asyncio.Future[None]]) -> None:
        while not self._stop.is_set():
            cid = self.rng.choice(self.customers)
            async with session.post(f"{self.base}/v1/decide", json={"customer_id": cid, "channel": "web"}) as r:
                self.seen.answer(r.status, r.headers, "decide")
                if r.status != 200:
                    await asyncio.sleep(0.05)
                    continue
                body = await r.json()
            self.seen.decides.append((time.monotonic(), cid, bool(body["degraded"])))
            events = [
                {
                    "event_id": f"ev-{next(self.ids)}",
                    "type": etype,
                    "customer_id": cid,
                    "action_id": a["action_id"],
                    "decision_id": body["decision_id"],
                    "channel": "web",
                }
                for a in body["actions"][:2]
                for etype in ("impression", "click")
            ]
            if events:
                pending.append(asyncio.ensure_future(self._send(session, events)))
            if len(pending) >= PENDING:
                await pending.pop(0)
            pending[:] = [p for p in pending if not p.done()]

    async def _send(self, session: aiohttp.ClientSession, events: list[dict[str, Any]]) -> None:
        """Until answered 202 (a channel re-sends what was not acknowledged; the ids make it safe)."""
        while True:
            try:
                async with session.post(f"{self.base}/v1/events", json={"events": events}) as r:
                    self.seen.answer(r.status, r.headers, "events")
                    if r.status == 202:
                        for e in events:
                            self.seen.accepted[e["event_id"]] = (e["customer_id"], e["action_id"], e["type"])
                        return
                    if r.status != 503:
                        return
                    pause = float(r.headers.get("Retry-After", "1"))
            except (aiohttp.ClientError, TimeoutError) as exc:  # nba should not drop or stall a request
                self.seen.unexpected.append(f"events: {exc!r}")
                pause = 0.2
            await asyncio.sleep(pause)


def recovery_seconds(seen: Seen, victims: set[str], killed_at: float) -> float | None:
    """From the kill to the first decision for a victim that was not degraded after its last degraded one
    (None when none of theirs was degraded)."""
    after = [(t, degraded) for t, cid, degraded in seen.decides if cid in victims and t >= killed_at]
    last_degraded = max((t for t, degraded in after if degraded), default=None)
    if last_degraded is None:
        return None
    healthy = [t for t, degraded in after if not degraded and t > last_degraded]
    return (min(healthy) if healthy else float("inf")) - killed_at


async def verify(base: str, seen: Seen, customers: list[str], patience: float = 120.0) -> dict[str, Any]:
    """Events answered 202 against the histories and the model's event counts."""
    per_customer = Counter(cid for cid, _, _ in seen.accepted.values())
    per_action = Counter((action, etype) for _, action, etype in seen.accepted.values())
    async with aiohttp.ClientSession() as session:
        short = 0
        extra = 0
        for cid in customers:
            async with session.get(f"{base}/v1/customers/{cid}") as r:
                body = await r.json()
            stored = body["history"]["events"]
            short += max(0, per_customer[cid] - stored)
            extra += max(0, stored - per_customer[cid])
        deadline = time.monotonic() + patience
        counted = -1
        while time.monotonic() < deadline:
            async with session.get(f"{base}/v1/actions/stats") as r:
                stats = await r.json()
            by_action = Counter(
                {(a["action_id"], etype): n for a in stats["actions"] for etype, n in a["events"].items()}
            )
            counted = sum(by_action.values())
            if counted >= len(seen.accepted):
                break
            await asyncio.sleep(0.5)
    return {
        "accepted": len(seen.accepted),
        "missing_from_histories": short,
        "beyond_accepted_in_histories": extra,
        "counted_by_model": counted,
        # (action, type) the model counted differently: accepted - counted
        "model_differs": {f"{a}:{t}": n for (a, t), n in (per_action - by_action).items()}
        | {f"{a}:{t}": -n for (a, t), n in (by_action - per_action).items()},
    }


class Server:
    """`nba serve` on the cluster, as an operator starts it."""

    def __init__(
        self, directory: Path, redis_url: str, durability: str, workers: int = 1, deadline_ms: int | None = None
    ):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = directory / "serve.log"
        env = {
            **os.environ,
            "NBA_REDIS_URL": redis_url,
            "NBA_DURABILITY": durability,
            "NBA_PORT": str(self.port),
            "NBA_RULES_DIR": str(RULES),
            "NBA_DATA_DIR": str(directory / "var"),
            "NBA_LOG_LEVEL": os.environ.get("FO_LOG_LEVEL", "WARNING"),
        }
        if deadline_ms is not None:
            env["NBA_DECIDE_DEADLINE_MS"] = str(deadline_ms)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "nba.cli", "serve", "--workers", str(workers)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, patience: float = 120.0) -> None:
        deadline = time.monotonic() + patience
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"nba serve exited: {self.log.read_text()[-3000:]}")
                try:
                    async with session.get(f"{self.base}/readyz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"nba serve not ready: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def put_profiles(base: str, customers: list[str]) -> None:
    async with aiohttp.ClientSession() as session:
        for cid in customers:
            async with session.put(f"{base}/v1/customers/{cid}", json={"attributes": PROFILE}) as r:
                if r.status != 200:
                    raise RuntimeError(f"PUT {cid}: {r.status} {await r.text()}")


class Servers(Protocol):
    """A Redis deployment whose servers can be killed: tests.redis_cluster or tests.redis_sentinel."""

    def kill(self, node: Any) -> None: ...

    def wait_for_failover(self, old_primary: Any, timeout: float) -> float: ...

    def restart(self, node: Any, timeout: float) -> None: ...


@dataclass(frozen=True)
class Target:
    """A deployment, nba's URL for it, and which of its servers is the primary of a customer."""

    servers: Servers
    url: str
    primary_for: Callable[[str], Any]


def cluster_target(cluster: LocalCluster) -> Target:
    return Target(cluster, cluster.seed_url, lambda cid: cluster.primary_of_slot(customer_slot(cid)))


def sentinel_target(deployment: LocalSentinel) -> Target:
    return Target(deployment, deployment.sentinel_url, lambda cid: deployment.primary())


async def failover(
    target: Target, traffic: Traffic, *, before: float, after: float, victim_customer: str
) -> dict[str, Any]:
    """One kill -9 of the primary of `victim_customer` while traffic runs; what it cost."""
    victim = target.primary_for(victim_customer)
    victims = {c for c in traffic.customers if target.primary_for(c) is victim}
    running = asyncio.ensure_future(traffic.run(before + after))
    await asyncio.sleep(before)
    killed_at = time.monotonic()
    target.servers.kill(victim)
    promoted = await asyncio.to_thread(target.servers.wait_for_failover, victim, 60.0)
    await asyncio.to_thread(target.servers.restart, victim, 120.0)
    await running
    return {
        "victims": len(victims),
        "promoted_s": promoted,
        "nba_recovered_s": recovery_seconds(traffic.seen, victims, killed_at),
        # scripts nba ran on the old primary after it came back (as a primary with old data, until it
        # learnt it had been replaced): writes that would be lost
        "scripts_on_old_primary": scripts_run(victim),
    }


def scripts_run(node: Any) -> int:
    """EVALSHA calls a server has executed since it started (replication does not count: scripts are
    replicated as their effects)."""
    with redis.Redis(host=node.host, port=node.port, password=getattr(node, "password", None)) as client:
        stats: dict[str, Any] = client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def main_async(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        deployment: LocalCluster | LocalSentinel
        if args.sentinel:
            deployment = LocalSentinel(Path(tmp) / "sentinel", down_after_ms=args.node_timeout_ms)
            deployment.start()
            target = sentinel_target(deployment)
        else:
            deployment = LocalCluster(Path(tmp) / "cluster", node_timeout_ms=args.node_timeout_ms)
            deployment.start()
            target = cluster_target(deployment)
        server = Server(Path(tmp), target.url, args.durability)
        try:
            await server.ready()
            customers = [f"fo-{i}" for i in range(args.customers)]
            await put_profiles(server.base, customers)
            traffic = Traffic(server.base, customers, args.clients)
            rounds = []
            for i in range(args.failovers):
                # a different primary each time: the first customer of another slot range
                victim = sorted(customers, key=lambda c: (customer_slot(c) + i * 5461) % 16384)[0]
                done = await failover(target, traffic, before=args.before, after=args.after, victim_customer=victim)
                rounds.append(done)
                print(f"failover {i + 1}: {rounds[-1]}", flush=True)
            checked = await verify(server.base, traffic.seen, customers)
        finally:
            server.stop()
            deployment.stop()
    recovered = [r["nba_recovered_s"] for r in rounds if r["nba_recovered_s"] is not None]
    print(
        f"\n{args.failovers} failovers on {'Sentinel' if args.sentinel else 'a cluster'}, NBA_DURABILITY="
        f"{args.durability}, {'down-after' if args.sentinel else 'cluster-node-timeout'} {args.node_timeout_ms} ms, "
        f"{args.clients} clients, {args.customers} customers, {os.cpu_count()} cores"
    )
    print(f"answers: {dict(sorted(traffic.seen.statuses.items()))}; unexpected: {traffic.seen.unexpected[:5]}")
    if recovered:
        print(
            "kill -9 -> decisions for the victims' customers no longer degraded (s): "
            + ", ".join(f"{s:.2f}" for s in recovered)
            + f"; median {statistics.median(recovered):.2f}, max {max(recovered):.2f}"
        )
    print("kill -9 -> replica promoted (s): " + ", ".join(f"{r['promoted_s']:.2f}" for r in rounds))
    print(f"events: {checked}")
    lost = checked["missing_from_histories"]
    print(f"acknowledged events lost: {lost} of {checked['accepted']}")
    return 0 if not traffic.seen.unexpected else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--failovers", type=int, default=5)
    parser.add_argument("--durability", choices=["memory", "replica"], default="replica")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--before", type=float, default=2.0, help="seconds of traffic before each kill")
    parser.add_argument("--after", type=float, default=8.0, help="seconds of traffic after each kill")
    parser.add_argument(
        "--node-timeout-ms", type=int, default=2000, help="cluster-node-timeout, or Sentinel's down-after-milliseconds"
    )
    parser.add_argument("--sentinel", action="store_true", help="a primary, a replica and 3 sentinels instead")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
