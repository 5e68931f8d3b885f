"""The demo's simulated past (customers/demo_traffic.py) goes through the real decisions, events and
learner, against a real Redis: afterwards the statistics show offers taken up on several channels by
both arms, over the simulated days; the same seed and clock decide the same; a Redis with a past is not
seeded again."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from nba.cli import main
from nba.concurrency import run_bounded
from nba.customers.demo import demo_population
from nba.customers.demo_traffic import DemoTraffic, Seeded, already_seeded, seed_traffic
from nba.domain import EVENT_TYPES
from nba.http.routes import CUSTOMERS, LIVE, METRICS, STORE
from nba.rules.load import load_rulebook
from nba.settings import Settings, SettingsError
from nba.store.history import newest_first
from tests.conftest import NOW, AppFactory, Clock, learn

DAY = 86400.0
Client = TestClient[Any, Any]


async def _seed(client: Client, customers: int, days: int, seed: int = 42) -> Seeded:
    """Demo customers as `nba serve --demo-customers` saves them, then their past, learning every hour."""
    app = client.app
    assert app is not None
    population = demo_population(customers, today=dt.datetime.fromtimestamp(NOW, dt.UTC).date())
    declared = app[LIVE].snapshot.rulebook.attributes
    saves = (app[CUSTOMERS].save(c, {k: v for k, v in a.items() if k in declared}, merge=False) for c, a in population)
    await run_bounded(saves, 16)
    traffic = DemoTraffic(app[LIVE], app[STORE], app[METRICS], population, days=days, end=NOW, seed=seed)
    seeded = await traffic.run(lambda: learn(client))
    await learn(client)
    return seeded


async def _with_control(make_client: AppFactory, rules_copy: Path) -> Client:
    """The tests' rules with a control group big enough to show in 200 customers."""
    with (rules_copy / "policy.yaml").open("a", encoding="utf-8") as f:
        f.write("  control: {share: 0.25, ordering: random}\n")
    client: Client = await make_client(load_rulebook(rules_copy), clock=Clock(NOW))
    return client


async def test_two_seeded_days_show_in_the_stats(make_client: AppFactory, rules_copy: Path) -> None:
    client = await _with_control(make_client, rules_copy)
    app = client.app
    assert app is not None
    store = app[STORE]
    assert not await already_seeded(store)

    seeded = await _seed(client, 200, 2)

    assert await already_seeded(store)
    assert sum(seeded.decisions.values()) > 300  # a few hundred visits a day for 200 customers
    assert seeded.degraded == seeded.busy == 0
    resp = await client.get("/v1/actions/stats")
    assert resp.status == 200
    stats = await resp.json()
    events = {a["action_id"]: a["events"] for a in stats["actions"]}
    taken = [a for a, e in events.items() if e.get("impression", 0) >= 10 and e.get("accept", 0) >= 1]
    assert len(taken) >= 5, events
    arms = stats["control"]["arms"]
    for arm in ("model", "control"):
        assert arms[arm]["shown"] > 0, arms
        assert arms[arm]["rewards"] > 0, arms
    # every impression sent was counted once (no event was lost or doubled on the way)
    impressions = sum(n for (_, etype), n in seeded.events.items() if etype == "impression")
    assert sum(e.get("impression", 0) for e in events.values()) == impressions

    # the histories hold the events at their own simulated times, over both days, on several channels
    accepted_on: Counter[str] = Counter()
    times: list[int] = []
    for i in range(200):
        customer = await store.read_customer(f"c-{1000 + i}")
        for ts_ms, code, _, channel in newest_first(customer.history, 0):
            times.append(ts_ms)
            if code >= 0 and EVENT_TYPES[code] == "accept":
                accepted_on[channel] += 1
    assert len(accepted_on) >= 2, accepted_on
    assert max(times) <= NOW * 1000
    assert min(times) < (NOW - 1.5 * DAY) * 1000
    days = Counter(int((NOW * 1000 - t) // (DAY * 1000)) for t in times)
    assert days[0] > 100, days
    assert days[1] > 100, days
    # and the decisions were recorded at theirs, answered on the channel that asked
    records = [r for i in range(50) for r in await store.decision_records(f"c-{1000 + i}")]
    assert records
    assert all(NOW - 2 * DAY - 3600 <= r["ts"] <= NOW for r in records)
    assert {r["channel"] for r in records if any(v > 0 for v in r["rewards"].values())} >= {"web", "app"}

    # a restart against this Redis seeds nothing again
    population = demo_population(200)
    assert await seed_traffic(app[LIVE], store, app[METRICS], population, 2, clock=lambda: NOW) is None


async def test_a_redis_that_received_an_event_has_a_past(client: Client) -> None:
    app = client.app
    assert app is not None
    store = app[STORE]
    assert not await already_seeded(store)
    assert (await client.put("/v1/customers/c-9", json={"attributes": {"products": ["mobile"]}})).status == 200
    assert not await already_seeded(store)  # customers are no past
    event = {"event_id": "e-1", "type": "impression", "customer_id": "c-9", "action_id": "tv-addon", "channel": "web"}
    resp = await client.post("/v1/events", json={"events": [event]})
    assert resp.status == 202
    assert await already_seeded(store)  # in the learner's inbox
    await learn(client)
    assert await already_seeded(store)  # counted


async def test_the_same_seed_and_clock_decide_the_same(make_client: AppFactory, redis: Redis) -> None:
    async def run() -> list[tuple[str, float, list[str]]]:
        client: Client = await make_client(clock=Clock(NOW))
        await _seed(client, 40, 1, seed=5)
        app = client.app
        assert app is not None
        records = [r for i in range(40) for r in await app[STORE].decision_records(f"c-{1000 + i}")]
        return sorted((r["customer_id"], r["ts"], [a["action_id"] for a in r["actions"]]) for r in records)

    first = await run()
    await redis.flushdb()
    second = await run()
    assert len(first) > 20
    assert sum(1 for _, _, actions in first if actions) > 10
    assert first == second


def test_demo_days_stay_inside_what_redis_keeps(capsys: pytest.CaptureFixture[str]) -> None:
    for days in ("29", "-1", "three"):
        with pytest.raises(SystemExit) as stopped:
            main(["serve", "--demo-customers", "10", "--demo-days", days])
        assert stopped.value.code == 2
        assert "--demo-days" in capsys.readouterr().err


def test_demo_days_can_come_from_the_environment() -> None:
    assert Settings.from_env({}).demo_days == 3
    assert Settings.from_env({"NBA_DEMO_DAYS": "0"}).demo_days == 0
    for bad in ("29", "-1", "three"):
        with pytest.raises(SettingsError, match="NBA_DEMO_DAYS"):
            Settings.from_env({"NBA_DEMO_DAYS": bad})
