"""Made-up customer ids cost nothing: without a profile, nothing is recorded unless the channel remembers
anonymous visitors (channels.yaml remember_anonymous), and then only for that long."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from nba.errors import RulesInvalid
from nba.rules.load import load_rulebook
from nba.store import keys
from tests.api.helpers import CROSSSELL_MOBILE, decide, put_customer, send_events
from tests.conftest import AppFactory


def _forgetting(rules: Path) -> Path:
    channels = rules / "channels.yaml"
    channels.write_text(channels.read_text().replace(", remember_anonymous: 30d", ""))  # the default
    return rules


async def _customer_keys(redis: Redis, cid: str) -> list[bytes]:
    return [k async for k in redis.scan_iter(match=keys.customer_pattern(cid))]


def _event(i: int, cid: str, **extra: Any) -> dict[str, Any]:
    return {"event_id": f"e-{cid}-{i}", "type": "click", "customer_id": cid, "action_id": "tv-addon"} | extra


async def test_decisions_and_events_for_unknown_customers_leave_nothing(
    make_client: AppFactory, redis: Redis, rules_copy: Path
) -> None:
    client = await make_client(load_rulebook(_forgetting(rules_copy)))
    for _ in range(5):  # five decisions used to reserve (and empty) the caps of whoever has this id
        d = await decide(client, "made-up-1", "web")
        assert d["actions"]
    result = await send_events(client, [_event(i, "made-up-1", channel="web") for i in range(3)])
    assert result["unknown_customer"] == 3
    assert result["accepted"] == 0
    assert await _customer_keys(redis, "made-up-1") == []
    # a customer with a profile is recorded as ever
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    d = await decide(client, "c-1", "web")
    assert (await send_events(client, [_event(1, "c-1", channel="web", decision_id=d["decision_id"])]))["accepted"] == 1
    assert len(await _customer_keys(redis, "c-1")) >= 3  # the customer, its decision and the index


async def test_a_channel_that_remembers_anonymous_visitors_keeps_them_that_long(
    make_client: AppFactory, redis: Redis
) -> None:
    client = await make_client()  # the tests' rules: web remembers anonymous visitors for 30 days
    d = await decide(client, "visitor-1", "web")
    await send_events(client, [_event(1, "visitor-1", channel="web", decision_id=d["decision_id"])])
    found = await _customer_keys(redis, "visitor-1")
    assert found
    for key in found:
        assert 0 < await redis.ttl(key) <= 30 * keys.DAY, key
    # email does not remember them (the tests' rules leave it at the default)
    await send_events(client, [_event(2, "visitor-2", channel="email")])
    assert await _customer_keys(redis, "visitor-2") == []


def test_remember_anonymous_is_bounded(rules_copy: Path) -> None:
    channels = rules_copy / "channels.yaml"
    channels.write_text(channels.read_text().replace("remember_anonymous: 30d", "remember_anonymous: 31d", 1))
    with pytest.raises(RulesInvalid, match="remember_anonymous: at most 30d"):
        load_rulebook(rules_copy)
