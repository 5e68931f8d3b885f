"""The whole loop over real Redis: seed -> decide -> events -> stats -> decisions shift."""

from __future__ import annotations

import math

from tests.api.helpers import CROSSSELL_MOBILE, Client, decide, put_customer, send_events
from tests.conftest import learn

TARGET = "broadband-bundle"


async def _first_share(client: Client, prefix: str, n: int) -> float:
    """Share of fresh customers (no history, so no caps) who get TARGET first."""
    hits = 0
    for i in range(n):
        cid = f"{prefix}-{i}"
        await put_customer(client, cid, CROSSSELL_MOBILE)
        body = await decide(client, cid)
        hits += bool(body["actions"]) and body["actions"][0]["action_id"] == TARGET
    return hits / n


async def test_accepts_shift_later_decisions_toward_the_accepted_action(client: Client) -> None:
    n = 150
    before = await _first_share(client, "before", n)

    # training: every shown action gets an impression; only TARGET is ever accepted
    shown_target = 0
    for i in range(120):
        cid = f"train-{i}"
        await put_customer(client, cid, CROSSSELL_MOBILE)
        body = await decide(client, cid)
        events = []
        for a in body["actions"]:
            events.append(
                {
                    "event_id": f"{cid}-{a['action_id']}-imp",
                    "type": "impression",
                    "customer_id": cid,
                    "action_id": a["action_id"],
                    "decision_id": body["decision_id"],
                    "channel": "web",
                }
            )
            if a["action_id"] == TARGET:
                shown_target += 1
                events.append(
                    {
                        "event_id": f"{cid}-acc",
                        "type": "accept",
                        "customer_id": cid,
                        "action_id": TARGET,
                        "decision_id": body["decision_id"],
                        "channel": "web",
                    }
                )
        if events:
            await send_events(client, events)
    assert shown_target > 10

    assert await learn(client)
    resp = await client.get("/v1/actions/stats")
    stats = {a["action_id"]: a for a in (await resp.json())["actions"]}
    assert stats[TARGET]["events"]["accept"] == shown_target
    cell = next(s for s in stats[TARGET]["segments"] if s["segment_key"] == "mid_value")
    assert cell["rewards"] == shown_target
    assert cell["trials"] == shown_target

    after = await _first_share(client, "after", n)
    # two independent shares of n decisions: 4 standard errors of their difference at p = 0.5
    margin = 4 * math.sqrt(2 * 0.25 / n)
    assert after - before > margin, (before, after, margin)
    assert after > 0.9


async def test_model_version_moves_with_events(client: Client) -> None:
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    body = await decide(client, "c-1")
    first = body["actions"][0]["action_id"]
    await send_events(
        client,
        [
            {
                "event_id": "e1",
                "type": "accept",
                "customer_id": "c-1",
                "action_id": first,
                "decision_id": body["decision_id"],
                "channel": "call_center",
            }
        ],
    )
    assert await learn(client)
    again = await decide(client, "c-2")
    assert again["model_version"] != body["model_version"]
