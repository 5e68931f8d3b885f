"""A dry run may rank a made-up profile (the decision explorer's): checked as a profile, ranked with its own
segments on the customer's stored contact history, and nothing is stored."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from nba.store import keys
from tests.api.helpers import CROSSSELL_MOBILE, Client, decide, problem, put_customer, send_events

CID = "c-made-up-1"


async def test_a_dry_run_ranks_a_made_up_profile_and_stores_nothing(client: Client, redis: Redis) -> None:
    await put_customer(client, "c-stored", CROSSSELL_MOBILE)
    stored = await decide(client, "c-stored", dry_run=True)
    made_up = await decide(client, "c-unknown", dry_run=True, profile=CROSSSELL_MOBILE)
    assert made_up["segments"] == stored["segments"]  # computed from the given profile
    assert made_up["dry_run"] is True
    assert [k async for k in redis.scan_iter(match=keys.customer_pattern("c-unknown"))] == []
    # on a stored customer it replaces the profile for this answer only
    other = {"products": ["mobile", "broadband", "tv"], "consents": {"crosssell": False}}
    instead = await decide(client, "c-stored", dry_run=True, profile=other)
    assert instead["segments"] != stored["segments"]
    body = await (await client.get("/v1/customers/c-stored")).json()
    assert body["attributes"]["products"] == ["mobile"]


async def test_a_made_up_profile_keeps_the_stored_contact_history(client: Client) -> None:
    target = "broadband-bundle"  # at most 3 impressions in 7 days
    await put_customer(client, CID, CROSSSELL_MOBILE)
    impressions = [
        {"event_id": f"i-{k}", "type": "impression", "customer_id": CID, "action_id": target, "channel": "web"}
        for k in range(3)
    ]
    await send_events(client, impressions)

    def stage(d: dict[str, Any]) -> str:
        return str(next(e["stage"] for e in d["explain"] if e["action_id"] == target))

    made_up = {**CROSSSELL_MOBILE, "plan": "large"}
    assert stage(await decide(client, CID, dry_run=True, profile=made_up, explain=True)) == "contact_policy"
    assert stage(await decide(client, "c-new", dry_run=True, profile=made_up, explain=True)) != "contact_policy"


async def test_a_profile_is_only_for_dry_runs_and_is_checked_as_a_profile(client: Client) -> None:
    base = {"customer_id": CID, "channel": "web"}
    for body, fields in (
        (base | {"profile": CROSSSELL_MOBILE}, ["profile"]),
        (base | {"profile": CROSSSELL_MOBILE, "dry_run": False}, ["profile"]),
        (base | {"profile": None, "dry_run": True}, ["profile"]),
        (base | {"profile": {"plan": 3, "shoe_size": 44}, "dry_run": True}, ["profile.plan", "profile.shoe_size"]),
    ):
        refused = await problem(await client.post("/v1/decide", json=body), 400)
        assert [e["field"] for e in refused["errors"]] == fields, body
