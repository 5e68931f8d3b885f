"""Seed a benchmark population through nba's own code paths, and measure what it costs Redis.

Profiles go through `Customers.save` (validation, materialised segments, the profile script), contact
histories through `EventIngest.ingest` (inbox, per-customer history and dedupe), and the learner drains
the inbox, exactly as a running server would. Histories are the last four weeks of a web, app and email
programme: about 70% of customers have 1-8 past contacts (impressions, clicks, rejects, accepts).

    python -m loadtests.seed --customers 1000000 --actions 1000            # own redis-server, then stops
    python -m loadtests.seed --redis redis://127.0.0.1:6379/0 --keep ...   # into a running Redis

Prints the seeding rates and Redis memory (used_memory before and after, per customer and per 1M).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from loadtests.gen_rules import generate
from nba.app import redis_client
from nba.concurrency import run_bounded
from nba.customers.demo import demo_customer
from nba.customers.service import Customers
from nba.domain import EventIn
from nba.learning.ingest import EventIngest
from nba.learning.learner import Learner
from nba.live import Live
from nba.metrics import Metrics
from nba.rules.load import load_rulebook
from nba.runtime.embedded_redis import RedisServer
from nba.store import keys
from nba.store.redis import Store

ROOT = Path(__file__).resolve().parent.parent
HISTORY_DAYS = 28  # inside the dedupe window (30 d): older events are refused at the door
EVENT_TYPES = np.array(["impression", "click", "reject", "accept"])
EVENT_P = np.array([0.7, 0.12, 0.13, 0.05])
CHANNELS = np.array(["web", "app", "email"])
BATCH = 500  # the events endpoint's batch limit


def customer_id(i: int) -> str:
    return f"c-{1000 + i}"  # the demo ids, so the load generators find them


def histories(start: int, stop: int, action_ids: list[str], now: float, rng: np.random.Generator) -> list[EventIn]:
    events: list[EventIn] = []
    for i in range(start, stop):
        if rng.random() >= 0.7:
            continue
        n = int(rng.integers(1, 9))
        types = rng.choice(EVENT_TYPES, size=n, p=EVENT_P)
        ages = np.sort(rng.uniform(60, HISTORY_DAYS * 86400, size=n))[::-1]
        for k in range(n):
            action = action_ids[int(rng.integers(len(action_ids)))]
            events.append(
                EventIn(
                    event_id=f"seed-{i}-{k}",
                    type=str(types[k]),
                    customer_id=customer_id(i),
                    action_id=action,
                    channel=str(CHANNELS[int(rng.integers(3))]),
                    decision_id=None,
                    ts=now - float(ages[k]),
                    properties={},
                )
            )
    return events


async def seed(url: str, rules: Path, customers: int, concurrency: int, seed_: int) -> dict[str, Any]:
    client = redis_client(url, 30.0)
    store = Store(client)
    rulebook = load_rulebook(rules)
    metrics = Metrics()
    live = Live(rulebook, store, metrics)
    await live.publish(rules)
    people = Customers(live, store, time.time)
    ingest = EventIngest(store, metrics)
    learner = Learner(lambda: live.snapshot.rulebook, store, metrics)
    action_ids = [a.id for a in rulebook.actions if a.id != "no-action"]
    await client.config_set("maxmemory-policy", "noeviction")
    before = int((await client.info("memory"))["used_memory"])
    shared_before = await shared_bytes(client)
    rng = np.random.default_rng(seed_)
    today = dt.date.today()

    t0 = time.perf_counter()
    n_events = 0
    phases = [0.0, 0.0, 0.0]
    chunk = min(20_000, customers)
    for start in range(0, customers, chunk):
        stop = min(customers, start + chunk)
        t1 = time.perf_counter()
        saves = (people.save(customer_id(i), demo_customer(i, rng, today), merge=False) for i in range(start, stop))
        await run_bounded(saves, concurrency)
        t2 = time.perf_counter()
        events = histories(start, stop, action_ids, time.time(), rng)
        n_events += len(events)
        posts = (ingest.ingest(events[k : k + BATCH], {}) for k in range(0, len(events), BATCH))
        await run_bounded(posts, concurrency)
        t3 = time.perf_counter()
        await learner.drain()  # as a server's learner would, so the inbox does not pile up
        phases[0] += t2 - t1
        phases[1] += t3 - t2
        phases[2] += time.perf_counter() - t3
        elapsed = time.perf_counter() - t0
        print(
            f"  {stop:>9,} customers, {n_events:>10,} events, {elapsed:6.0f} s "
            f"({stop / elapsed:,.0f} customers/s; profiles {phases[0]:.0f} s, "
            f"events {phases[1]:.0f} s, learner {phases[2]:.0f} s)",
            flush=True,
        )
    await learner.stop()
    seconds = time.perf_counter() - t0
    info = await client.info("memory")
    after = int(info["used_memory"])
    shared = await shared_bytes(client) - shared_before
    n_keys = int(await client.dbsize())
    await store.close()
    # the model, rules and inbox keys do not grow with the customers (per-action event counts are the
    # largest): per 1M customers counts only what does
    per_customer = (after - before - shared) / customers
    return {
        "customers": customers,
        "events": n_events,
        "seconds": seconds,
        "keys": n_keys,
        "used_memory_before": before,
        "used_memory_after": after,
        "shared": shared,
        "bytes_per_customer": per_customer,
        "gib_per_million": per_customer * 1e6 / 2**30,
        "rss": int(info["used_memory_rss"]),
    }


async def shared_bytes(client: Any) -> int:
    """Memory of the keys that are not any customer's (model, rules, inbox), exactly (SAMPLES 0)."""
    total = 0
    for pattern in (f"{keys.PREFIX}:{{model}}:*", f"{keys.PREFIX}:{{rules}}:*"):
        async for key in client.scan_iter(match=pattern, count=1000):
            total += int(await client.memory_usage(key, samples=0) or 0)
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--actions", type=int, default=1000, help="generated actions (0: the shipped rules/)")
    parser.add_argument("--redis", help="seed this Redis (default: a private redis-server, stopped after)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rules = generate(Path(tmp) / "rules", args.actions, seed=1) if args.actions else ROOT / "rules"
        server = None if args.redis else RedisServer(Path(tmp) / "redis", persist=False)
        url = args.redis or server.start()  # type: ignore[union-attr]
        try:
            r = asyncio.run(seed(url, rules, args.customers, args.concurrency, args.seed))
        finally:
            if server is not None:
                server.stop()
    print(
        f"seeded {r['customers']:,} customers and {r['events']:,} contact events in {r['seconds']:.0f} s "
        f"({r['customers'] / r['seconds']:,.0f} customers/s, {r['events'] / r['seconds']:,.0f} events/s); "
        f"{r['keys']:,} keys"
    )
    print(
        f"Redis used_memory {r['used_memory_before'] / 2**20:.1f} -> {r['used_memory_after'] / 2**20:.1f} MiB "
        f"(rss {r['rss'] / 2**20:.1f} MiB), of which {r['shared'] / 2**20:.2f} MiB model, rules and inbox: "
        f"{r['bytes_per_customer']:.0f} bytes per customer, "
        f"{r['gib_per_million']:.3f} GiB per 1M customers"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
