"""Small helpers for API tests."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

Client = TestClient[web.Request, web.Application]

CROSSSELL_MOBILE = {  # eligible for broadband-bundle and several others, mid value
    "products": ["mobile"],
    "plan": "medium",
    "monthly_spend": 45.0,
    "usage_gb": 8.0,
    "tenure_months": 40,
    "consents": {"crosssell": True, "email": True},
    "email": "a@example.nl",
    "open_complaint": False,
}


async def put_customer(client: Client, cid: str, attrs: dict[str, Any]) -> dict[str, Any]:
    resp = await client.put(f"/v1/customers/{cid}", json={"attributes": attrs})
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def decide(client: Client, cid: str, channel: str = "web", **extra: Any) -> dict[str, Any]:
    resp = await client.post("/v1/decide", json={"customer_id": cid, "channel": channel, **extra})
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def send_events(client: Client, events: list[dict[str, Any]]) -> dict[str, Any]:
    resp = await client.post("/v1/events", json={"events": events})
    assert resp.status == 202, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body: dict[str, Any] = await resp.json()
    assert set(body) >= {"type", "title", "status", "detail", "code", "errors"}
    assert body["status"] == status
    return body
