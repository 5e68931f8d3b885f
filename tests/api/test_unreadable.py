"""A stored record nba cannot parse never turns a customer, or the learner, into a permanent error.

Ids are validated so nba itself no longer writes such records (tests/unit/test_ids.py); these are written
here by hand, as an older version, an operator or damage would leave them.
"""

from __future__ import annotations

from typing import cast

import pytest
from redis.asyncio import Redis

from nba.store import history, keys
from nba.store.redis import Store
from tests.api.helpers import CROSSSELL_MOBILE, Client, decide, problem, put_customer, send_events
from tests.conftest import NOW, learn, learner

# what one accepted `"action_id": "loyalty-gift\n"` used to leave in the history: a line cut in two
POISON = (f"{history.ts36(int(NOW * 1000) - 60_000)}|2|loyalty-gift\n|web|{history.event_key('nl-1')}\n").encode()


async def _metric(client: Client, record: str) -> float:
    text = await (await client.get("/metrics")).text()
    for line in text.splitlines():
        if line.startswith(f'nba_unreadable_records_total{{record="{record}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_an_event_id_with_a_trailing_newline_is_refused_naming_the_field(client: Client) -> None:
    resp = await client.post(
        "/v1/events",
        json={
            "events": [
                {
                    "event_id": "nl-1",
                    "type": "impression",
                    "customer_id": "c-nl1",
                    "action_id": "loyalty-gift\n",
                    "channel": "web",
                }
            ]
        },
    )
    body = await problem(resp, 400)
    assert [e["field"] for e in body["errors"]] == ["events[0].action_id"]
    assert (await problem(await client.get("/v1/customers/c-1%0A"), 400))["errors"][0]["field"] == "customer_id"


@pytest.mark.parametrize(
    "damage",
    [
        POISON,
        b"not a history at all\n",
        b"zz|9|tv-addon|web|k\n",  # an event type nba does not know
        b"\xff\xfe|0|tv-addon|web|k\n",  # not UTF-8
        b"|||||\n\n\n",
    ],
)
async def test_a_damaged_history_entry_is_skipped_everywhere(client: Client, redis: Redis, damage: bytes) -> None:
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    await send_events(
        client,
        [{"event_id": "before", "type": "impression", "customer_id": "c-1", "action_id": "tv-addon", "channel": "web"}],
    )
    stored: bytes = await redis.hget(keys.customer("c-1"), keys.Field.HISTORY)  # type: ignore[assignment]
    await redis.hset(keys.customer("c-1"), "h", damage + stored)

    d = await decide(client, "c-1")
    assert not d["degraded"]
    assert d["actions"]
    customer = await (await client.get("/v1/customers/c-1")).json()
    assert customer["history"]["by_action"]["tv-addon"] == {"impression": 1}
    result = await send_events(
        client,
        [
            {
                "event_id": "after",
                "type": "accept",
                "customer_id": "c-1",
                "action_id": d["actions"][0]["action_id"],
                "decision_id": d["decision_id"],
                "channel": "web",
            }
        ],
    )
    assert result["credited"] == 1
    await put_customer(client, "c-1", {**CROSSSELL_MOBILE, "plan": "large"})
    assert (await client.delete("/v1/customers/c-1")).status == 204
    assert await _metric(client, "history_entry") >= 1


async def test_an_unreadable_profile_degrades_decisions_and_is_409_until_replaced(client: Client, redis: Redis) -> None:
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    await redis.hset(keys.customer("c-1"), mapping={keys.Field.ATTRIBUTES: b"{broken", keys.Field.SEGMENTS: b"x"})

    d = await decide(client, "c-1")
    assert d["degraded"]  # the rules alone, as for an unknown customer
    assert await _metric(client, "profile") >= 1
    body = await problem(await client.get("/v1/customers/c-1"), 409)
    assert body["code"] == "stored_data_unreadable"
    assert "PUT replaces it" in body["detail"]
    await problem(await client.patch("/v1/customers/c-1", json={"attributes": {"plan": "large"}}), 409)
    assert (
        await send_events(
            client,
            [{"event_id": "e", "type": "click", "customer_id": "c-1", "action_id": "tv-addon", "channel": "web"}],
        )
    )["accepted"] == 1

    replaced = await put_customer(client, "c-1", CROSSSELL_MOBILE)  # the CRM's fix
    assert replaced["attributes"] == CROSSSELL_MOBILE
    assert not (await decide(client, "c-1"))["degraded"]


async def test_the_learner_skips_entries_and_records_it_cannot_read(client: Client, redis: Redis) -> None:
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    await put_customer(client, "c-2", CROSSSELL_MOBILE)
    d1 = await decide(client, "c-1")
    d2 = await decide(client, "c-2")
    a1, a2 = d1["actions"][0]["action_id"], d2["actions"][0]["action_id"]
    shards = await cast(Store, learner(client).store).inbox_shards()
    inbox = keys.inbox(keys.inbox_shard("c-1", shards), shards)  # where the learner reads c-1's events
    await redis.xadd(inbox, {"e": b"garbage"})
    await redis.xadd(inbox, {"x": b"[1, 2]"})
    # a damaged decision record: its answers cannot be credited, the rest of the batch can
    await redis.hset(keys.decision("c-1", d1["decision_id"]), f"a:{a1}", "web|only-two")
    await send_events(
        client,
        [
            {
                "event_id": "e1",
                "type": "accept",
                "customer_id": "c-1",
                "action_id": a1,
                "decision_id": d1["decision_id"],
                "channel": "web",
            },
            {
                "event_id": "e2",
                "type": "accept",
                "customer_id": "c-2",
                "action_id": a2,
                "decision_id": d2["decision_id"],
                "channel": "web",
            },
        ],
    )
    await learn(client)
    assert await redis.xlen(inbox) == 0  # read past, not stuck behind them
    body = await (await client.get("/v1/actions/stats")).json()
    rewards = {a["action_id"]: sum(s["rewards"] for s in a["segments"]) for a in body["actions"]}
    assert rewards[a2] == 1.0
    assert await _metric(client, "inbox_entry") == 2
    assert await _metric(client, "decision_meta") == 1
    assert learner(client).metrics.learner_errors._value.get() == 0


async def test_log_export_skips_a_damaged_decision_record(client: Client, redis: Redis) -> None:
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    good = await decide(client, "c-1")
    bad = await decide(client, "c-1")
    await redis.hset(keys.decision("c-1", bad["decision_id"]), "rec", b"{")
    store = learner(client).store
    records = await store.decision_records("c-1")
    assert [r["decision_id"] for r in records] == [good["decision_id"]]
