"""A decide request_id names one page view or call: its repeats within the channel's request_window get
the same decision and reserve nothing more."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from nba.decision.rank import RESERVATION_SECONDS
from nba.rules.load import load_rulebook
from nba.store import keys
from tests.api.helpers import CROSSSELL_MOBILE, Client, decide, problem, put_customer
from tests.conftest import AppFactory, Clock

CID = "c-rep-1"


async def _history(redis: Redis, cid: str) -> bytes:
    raw: bytes = await redis.hget(keys.customer(cid), keys.Field.HISTORY) or b""  # type: ignore[assignment]
    return raw


def _shown(d: dict[str, Any]) -> list[str]:
    return [a["action_id"] for a in d["actions"]]


async def test_reloads_of_one_page_view_get_the_same_decision_and_reserve_nothing(client: Client, redis: Redis) -> None:
    await put_customer(client, CID, CROSSSELL_MOBILE)
    first = await decide(client, CID, request_id="view-1")
    assert first["actions"]
    assert "repeat" not in first
    reserved = await _history(redis, CID)
    version = await redis.hget(keys.customer(CID), keys.Field.VERSION)
    for _ in range(5):  # six loads of the page used to show 3, 3, 2, 0, 1, 0 actions
        again = await decide(client, CID, request_id="view-1")
        assert again.pop("repeat") is True
        assert again == first  # same decision id, actions, content, reasons, scores
    assert await _history(redis, CID) == reserved  # no new reservation
    assert await redis.hget(keys.customer(CID), keys.Field.VERSION) == version  # nothing recorded
    assert await redis.zcard(keys.decisions(CID)) == 1
    other = await decide(client, CID, request_id="view-2")  # the next page view is a new decision
    assert other["decision_id"] != first["decision_id"]
    assert "repeat" not in other


async def test_a_request_id_is_per_customer(client: Client) -> None:
    a = await decide(client, "c-rep-a", request_id="view-1")
    b = await decide(client, "c-rep-b", request_id="view-1")
    assert a["decision_id"] != b["decision_id"]
    assert "repeat" not in b


async def test_a_request_id_reused_for_another_request_is_refused(client: Client) -> None:
    await put_customer(client, CID, CROSSSELL_MOBILE)
    first = await decide(client, CID, "web", request_id="view-1", context={"reason": "billing"})
    for changed in (
        {"channel": "app"},
        {"limit": 2},
        {"context": {"reason": "moving"}},
        {"contact_id": "call-1"},
        {"explain": True},
    ):
        body = {"customer_id": CID, "channel": "web", "request_id": "view-1", "context": {"reason": "billing"}}
        resp = await client.post("/v1/decide", json=body | changed)
        refused = await problem(resp, 409)
        assert refused["code"] == "request_id_reused", changed
        assert [e["field"] for e in refused["errors"]] == ["request_id"]
        assert first["decision_id"] in refused["detail"]
    # the same body, the default limit spelled out: the same request
    same = await decide(client, CID, "web", request_id="view-1", context={"reason": "billing"}, limit=3)
    assert same["decision_id"] == first["decision_id"]


async def test_after_the_window_a_request_id_decides_anew(make_client: AppFactory) -> None:
    clock = Clock()
    client = await make_client(clock=clock)
    await put_customer(client, CID, CROSSSELL_MOBILE)
    first = await decide(client, CID, request_id="view-1")
    clock.now += RESERVATION_SECONDS - 1  # the default window is the reservation's 30 minutes
    assert (await decide(client, CID, request_id="view-1"))["decision_id"] == first["decision_id"]
    clock.now += 2
    later = await decide(client, CID, request_id="view-1")
    assert later["decision_id"] != first["decision_id"]
    assert "repeat" not in later


async def test_the_window_is_the_channels(make_client: AppFactory, rules_copy: Path) -> None:
    channels = rules_copy / "channels.yaml"
    channels.write_text(channels.read_text().replace("call_center: {", "call_center: {request_window: 2h, ", 1))
    clock = Clock()
    client = await make_client(load_rulebook(rules_copy), clock=clock)
    await put_customer(client, CID, CROSSSELL_MOBILE)
    web = await decide(client, CID, "web", request_id="view-1")
    call = await decide(client, CID, "call_center", request_id="call-1")
    clock.now += 3600  # a long call: still the same; the page view's window has ended
    assert (await decide(client, CID, "call_center", request_id="call-1"))["decision_id"] == call["decision_id"]
    assert (await decide(client, CID, "web", request_id="view-1"))["decision_id"] != web["decision_id"]


async def test_dry_runs_neither_remember_nor_repeat(client: Client, redis: Redis) -> None:
    await put_customer(client, CID, CROSSSELL_MOBILE)
    preview = await decide(client, CID, request_id="view-1", dry_run=True)
    assert not await redis.exists(keys.requests(CID))
    real = await decide(client, CID, request_id="view-1")
    assert real["decision_id"] != preview["decision_id"]
    assert "repeat" not in real
    again = await decide(client, CID, request_id="view-1", dry_run=True)  # a preview ranks anew
    assert again["decision_id"] != real["decision_id"]
    assert again["dry_run"] is True
    assert "repeat" not in again


async def test_a_repeat_of_a_gone_decision_decides_anew(client: Client, redis: Redis) -> None:
    await put_customer(client, CID, CROSSSELL_MOBILE)
    first = await decide(client, CID, request_id="view-1")
    await redis.delete(keys.decision(CID, first["decision_id"]))  # expired, or pushed out by newer ones
    again = await decide(client, CID, request_id="view-1")
    assert again["decision_id"] != first["decision_id"]
    assert "repeat" not in again
    assert (await decide(client, CID, request_id="view-1"))["decision_id"] == again["decision_id"]


async def test_an_erased_customers_request_ids_go_with_it(client: Client, redis: Redis) -> None:
    await put_customer(client, CID, CROSSSELL_MOBILE)
    first = await decide(client, CID, request_id="view-1")
    assert await redis.exists(keys.requests(CID))
    assert (await client.delete(f"/v1/customers/{CID}")).status == 204
    assert not await redis.exists(keys.requests(CID))
    await put_customer(client, CID, CROSSSELL_MOBILE)  # a new relationship
    again = await decide(client, CID, request_id="view-1")
    assert again["decision_id"] != first["decision_id"]
    assert "repeat" not in again


async def test_an_explained_decision_repeats_with_its_explanation(client: Client) -> None:
    await put_customer(client, CID, CROSSSELL_MOBILE)
    first = await decide(client, CID, "call_center", request_id="call-1", explain=True)
    assert first["explain"]
    again = await decide(client, CID, "call_center", request_id="call-1", explain=True)
    assert again["repeat"] is True
    assert again["explain"] == first["explain"]


async def test_concurrent_twins_make_one_decision(make_client: AppFactory, redis: Redis) -> None:
    # two app instances = two server processes (own locks, one Redis), ten identical requests each at once
    a, b = await make_client(seed=1), await make_client(seed=2)
    await put_customer(a, CID, CROSSSELL_MOBILE)
    answers = await asyncio.gather(*(decide(x, CID, request_id="view-1") for _ in range(10) for x in (a, b)))
    assert len({d["decision_id"] for d in answers}) == 1
    assert sum("repeat" not in d for d in answers) == 1
    assert all(_shown(d) == _shown(answers[0]) for d in answers)
    assert await redis.zcard(keys.decisions(CID)) == 1
    assert (await _history(redis, CID)).count(b"\n") == len(answers[0]["actions"])  # one reservation each
