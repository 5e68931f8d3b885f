"""Customer profiles: replace, merge, read, erase (every key, checked with SCAN)."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from nba.store import keys
from tests.api.helpers import CROSSSELL_MOBILE, Client, decide, problem, put_customer, send_events


async def test_put_materialises_segments_and_patch_merges(client: Client) -> None:
    body = await put_customer(client, "c-1", CROSSSELL_MOBILE)
    assert body["segments"] == ["mobile_customer", "crosssell_consent", "email_consent", "mid_value", "long_tenure"]
    assert body["revision"] == 1
    resp = await client.patch(
        "/v1/customers/c-1",
        json={"attributes": {"products": ["mobile", "broadband"], "email": None, "consents": {"email": False}}},
    )
    assert resp.status == 200
    body = await resp.json()
    assert "email" not in body["attributes"]
    assert body["attributes"]["consents"] == {"crosssell": True, "email": False}
    assert "broadband_customer" in body["segments"]
    assert "email_missing" in body["segments"]
    assert body["revision"] == 2


async def test_concurrent_patches_lose_nothing(client: Client) -> None:
    await put_customer(client, "c-1", {"products": ["mobile"]})
    flags = [f"f{i}" for i in range(20)]
    resps = await asyncio.gather(
        *(client.patch("/v1/customers/c-1", json={"attributes": {"consents": {f: True}}}) for f in flags)
    )
    assert all(r.status == 200 for r in resps)
    body = await (await client.get("/v1/customers/c-1")).json()
    assert set(body["attributes"]["consents"]) == set(flags)


async def test_unknown_customer_reads_404_but_decides_from_an_empty_profile(client: Client) -> None:
    body = await problem(await client.get("/v1/customers/nobody"), 404)
    assert body["code"] == "customer_not_found"
    d = await decide(client, "anonymous-visitor-1")
    assert d["segments"] == ["email_missing", "other"] or d["segments"] == ["email_missing"]
    assert {a["action_id"] for a in d["actions"]} <= {"email-capture", "crosssell-consent-request"}


async def test_wrong_attribute_types_are_refused_with_their_field(client: Client) -> None:
    resp = await client.put(
        "/v1/customers/c-1",
        json={
            "attributes": {
                "monthly_spend": "lots",
                "products": ["mobile", "fax"],
                "tenure_months": 3.5,
                "shoe_size": 44,
                "consents": {"crosssell": "yes"},
                "last_purchase_at": "last week",
                "open_complaint": None,
            }
        },
    )
    body = await problem(resp, 400)
    assert {e["field"] for e in body["errors"]} == {
        "attributes.monthly_spend",
        "attributes.products",
        "attributes.tenure_months",
        "attributes.shoe_size",
        "attributes.consents",
        "attributes.last_purchase_at",
        "attributes.open_complaint",
    }
    await problem(await client.get("/v1/customers/c-1"), 404)  # nothing stored


async def test_erase_removes_every_key_of_the_customer(client: Client, redis: Redis) -> None:
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    await put_customer(client, "c-2", CROSSSELL_MOBILE)
    for cid in ("c-1", "c-2"):
        for _ in range(3):
            d = await decide(client, cid)
            await send_events(
                client,
                [
                    {
                        "event_id": f"{d['decision_id']}-i",
                        "type": "impression",
                        "customer_id": cid,
                        "action_id": d["actions"][0]["action_id"],
                        "decision_id": d["decision_id"],
                        "channel": "web",
                    }
                ],
            )
    before = [k async for k in redis.scan_iter(match=keys.customer_pattern("c-1"))]
    assert len(before) == 3 + 3  # the customer, decisions index, shown + 3 decision records
    resp = await client.delete("/v1/customers/c-1")
    assert resp.status == 204
    assert [k async for k in redis.scan_iter(match=keys.customer_pattern("c-1"))] == []
    assert [k async for k in redis.scan_iter(match="*c-1*")] == []
    assert len([k async for k in redis.scan_iter(match=keys.customer_pattern("c-2"))]) == len(before)
    assert (await client.delete("/v1/customers/c-1")).status == 204  # erasing twice is fine
