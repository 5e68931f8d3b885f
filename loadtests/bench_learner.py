"""How many events per second one learner applies, on one Redis and on a local Redis Cluster (3 primaries,
3 replicas, the inbox in 6 shards), measured in the same run.

Fills the inbox with `--events` events (impressions and clicks answering recorded decisions of
`--customers` customers, in batches as channels send them), then times `Learner.drain()`: crediting
each event to its decision, the statistics and the commit, until the inbox is empty. The learner is the
one consumer of every shard, so this is the ceiling of sustained events/s whatever the shard count.

    .venv/bin/python -m loadtests.bench_learner --events 50000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

from nba.learning.learner import Learner
from nba.metrics import Metrics
from nba.rules.load import load_rulebook
from nba.runtime.embedded_redis import RedisServer
from nba.store.client import redis_client
from nba.store.contract import DecisionWrite, EventArgs
from nba.store.redis import Store
from tests.redis_cluster import LocalCluster

ROOT = Path(__file__).resolve().parent.parent


async def measure(url: str, events: int, customers: int, seed: int = 1) -> tuple[float, float, int]:
    """(events/s applied by one learner, events/s written, shards)."""
    rb = load_rulebook(ROOT / "rules")
    store = Store(redis_client(url, 10.0))
    rng = random.Random(seed)
    actions = [a.id for a in rb.actions][:5]
    now = int(time.time() * 1000)
    try:
        ids = [f"c-{i}" for i in range(customers)]
        decisions = {}
        for cid in ids:
            snap = await store.read_customer(cid)
            did = f"d-{cid}"
            ranked = [(a, f"web|other|model|{now + 86_400_000}||") for a in actions[:2]]
            await store.record_decision(
                cid, snap.version, DecisionWrite(did, now, b"{}", ranked, "web", anonymous_ttl=3600)
            )
            decisions[cid] = did
        start = time.perf_counter()
        sent = 0
        while sent < events:
            batch: dict[str, list[EventArgs]] = {}
            for _ in range(100):
                cid = rng.choice(ids)
                etype = rng.choice(("impression", "click"))
                e = EventArgs(cid, f"e{sent}", now, etype, actions[0], "web", decisions[cid])
                batch.setdefault(cid, []).append(e)
                sent += 1
            await store.apply_events(batch, now, anonymous_ttl=dict.fromkeys(batch, 3600))
        written = sent / (time.perf_counter() - start)
        learner = Learner(lambda: rb, store, Metrics())
        start = time.perf_counter()
        applied = await learner.drain()
        elapsed = time.perf_counter() - start
        return applied / elapsed, written, await store.inbox_shards()
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--customers", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        single = RedisServer(Path(tmp) / "redis", persist=False)
        cluster = LocalCluster(Path(tmp) / "cluster")
        try:
            url = single.start()
            cluster.start()
            rows = {
                "single Redis": asyncio.run(measure(url, args.events, args.customers)),
                "cluster 3+3": asyncio.run(measure(cluster.seed_url, args.events, args.customers)),
            }
        finally:
            single.stop()
            cluster.stop()
    print(f"\n{args.events} events of {args.customers} customers; one learner; 2 cores shared with Redis")
    print(f"{'store':14} {'shards':>6} {'written/s':>10} {'learned/s':>10}")
    for name, (learned, written, shards) in rows.items():
        print(f"{name:14} {shards:6d} {written:10.0f} {learned:10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
