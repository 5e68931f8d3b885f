"""Caps hold under concurrent decisions for one customer, within one process and across processes."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from nba.decision.rank import RESERVATION_SECONDS
from nba.store import history, keys
from tests.api.helpers import CROSSSELL_MOBILE, Client, decide, put_customer, send_events
from tests.conftest import AppFactory, Clock

TARGET = "broadband-bundle"  # limits[0]: at most 3 impressions in 7 days


async def _two_shown(client: Client, cid: str) -> None:
    await put_customer(client, cid, CROSSSELL_MOBILE)
    await send_events(
        client,
        [
            {"event_id": f"{cid}-{k}", "type": "impression", "customer_id": cid, "action_id": TARGET, "channel": "web"}
            for k in range(2)
        ],
    )


async def test_the_last_slot_of_a_cap_goes_to_one_decision_only(make_client: AppFactory) -> None:
    # two app instances = two server processes: separate locks, one Redis
    a, b = await make_client(seed=1), await make_client(seed=2)
    await _two_shown(a, "c-1")
    results = await asyncio.gather(*(decide(x, "c-1", limit=5) for _ in range(10) for x in (a, b)))
    with_target = [r for r in results if any(act["action_id"] == TARGET for act in r["actions"])]
    assert len(with_target) == 1, [[act["action_id"] for act in r["actions"]] for r in results]


async def test_without_contention_every_decision_may_show_it(make_client: AppFactory) -> None:
    """The control for the test above: each fresh customer at N-1 can get TARGET (so 1 is not luck)."""
    a = await make_client(seed=1)
    shown = 0
    for i in range(10):
        await _two_shown(a, f"f-{i}")
        d = await decide(a, f"f-{i}", limit=5)
        shown += any(act["action_id"] == TARGET for act in d["actions"])
    assert shown >= 5


async def _history(redis: Redis, cid: str) -> list[str]:
    """The stored history as "type|action|id" lines, type names spelled out ('reserved' for reservations)."""
    raw: bytes = await redis.hget(keys.customer(cid), keys.Field.HISTORY) or b""  # type: ignore[assignment]
    names = {code: name for name, code in history.TYPE_CODE.items()} | {history.RESERVED: "reserved"}
    lines = [line.split("|") for line in raw.decode().splitlines()]
    return [f"|{names[t]}|{action}|{eid}" for _, t, action, _, eid in lines]


async def test_the_impression_replaces_the_reservation_and_reservations_expire(
    make_client: AppFactory, redis: Redis
) -> None:
    clock = Clock()
    a = await make_client(clock=clock)
    await _two_shown(a, "c-2")
    d = await decide(a, "c-2", limit=5)
    shown = [act["action_id"] for act in d["actions"]]
    assert TARGET in shown
    members = await _history(redis, "c-2")
    assert sum("|reserved|" in m for m in members) == len(shown)
    again = await decide(a, "c-2", limit=5)  # the reservation counts: 2 + 1 = 3 = the cap
    assert TARGET not in [act["action_id"] for act in again["actions"]]
    await send_events(
        a,
        [
            {
                "event_id": "imp",
                "type": "impression",
                "customer_id": "c-2",
                "action_id": TARGET,
                "decision_id": d["decision_id"],
                "channel": "web",
            }
        ],
    )
    members = await _history(redis, "c-2")
    assert not any(f"|reserved|{TARGET}|" in m and d["decision_id"] in m for m in members)
    assert sum(f"|impression|{TARGET}|" in m for m in members) == 3
    customer = await (await a.get("/v1/customers/c-2")).json()
    assert customer["history"]["by_action"][TARGET] == {"impression": 3}

    await put_customer(a, "c-3", CROSSSELL_MOBILE)
    await send_events(
        a, [{"event_id": "c3-1", "type": "impression", "customer_id": "c-3", "action_id": TARGET, "channel": "web"}]
    )
    # pile up reservations without impressions until the cap binds, then let them expire
    for _ in range(5):
        await decide(a, "c-3", limit=5)
    capped = await decide(a, "c-3", limit=5, explain=True)
    assert next(e for e in capped["explain"] if e["action_id"] == TARGET)["stage"] == "contact_policy"
    clock.now += RESERVATION_SECONDS + 1
    free = await decide(a, "c-3", limit=5, explain=True)
    assert next(e for e in free["explain"] if e["action_id"] == TARGET)["stage"] != "contact_policy"
