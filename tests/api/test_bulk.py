"""POST /v1/customers:bulk: a CRM pushes JSON lines; each line is checked and stored as PUT (or PATCH)
stores one, a bad line is answered with its line and field, limits are refused whole."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import orjson

from nba.access.apikeys import KeyRequest
from nba.access.service import OPEN
from nba.http import wire
from nba.http.access import ACCESS
from tests.api.helpers import CROSSSELL_MOBILE, Client, problem, put_customer
from tests.conftest import AppFactory

NDJSON = {"Content-Type": "application/x-ndjson"}


def _lines(*records: Any) -> bytes:
    return b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in records)


async def _push(client: Client, body: bytes, query: str = "", **headers: str) -> Any:
    return await client.post(f"/v1/customers:bulk{query}", data=io.BytesIO(body), headers={**NDJSON, **headers})


async def test_each_line_is_stored_as_put_stores_it_and_bad_lines_are_named(client: Client) -> None:
    body = _lines(
        {"customer_id": "c-1", "attributes": CROSSSELL_MOBILE},
        {"customer_id": "c-2", "attributes": {"monthly_spend": "a lot", "plan": "basic"}},
        b'{"customer_id": "c-3", "attributes": {"plan": "basic"',  # cut off
        {"customer_id": "c-4", "attributes": {"products": ["mobile"], "tenure_months": 48.0}},
        {"customer_id": "c{5}", "attributes": {}},
        b"",
        {"customer_id": "c-1", "attributes": {**CROSSSELL_MOBILE, "plan": "large"}},  # the later line stays
    )
    resp = await _push(client, body)
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    assert answer["imported"] == 3
    assert answer["rejected"] == 3
    assert [(e["line"], e["customer_id"], e["field"]) for e in answer["errors"]] == [
        (2, "c-2", "attributes.monthly_spend"),
        (3, "c-3", "line"),
        (5, None, "customer_id"),
    ]
    assert answer["errors"][0]["message"] == "must be a number"
    one = await (await client.get("/v1/customers/c-1")).json()
    same = await put_customer(client, "c-9", {**CROSSSELL_MOBILE, "plan": "large"})
    assert one["attributes"] == same["attributes"]
    assert one["segments"] == same["segments"]  # the same materialised segments as PUT
    assert (await (await client.get("/v1/customers/c-4")).json())["attributes"]["tenure_months"] == 48
    for absent in ("c-2", "c-3"):
        assert (await client.get(f"/v1/customers/{absent}")).status == 404


async def test_merge_mode_patches(client: Client) -> None:
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    patch = {"customer_id": "c-1", "attributes": {"plan": "large", "email": None, "consents": {"email": False}}}
    resp = await _push(client, _lines(patch), "?mode=merge")
    assert (await resp.json())["imported"] == 1
    merged = (await (await client.get("/v1/customers/c-1")).json())["attributes"]
    assert merged["plan"] == "large"
    assert "email" not in merged
    assert merged["consents"] == {"crosssell": True, "email": False}
    # a null is not an attribute value in replace mode (as PUT)
    answer = await (await _push(client, _lines(patch))).json()
    assert answer["errors"][0]["field"] == "attributes.email"


async def test_requests_outside_the_limits_store_nothing(client: Client) -> None:
    one = _lines({"customer_id": "c-1", "attributes": {"plan": "basic"}})
    wrong = await client.post("/v1/customers:bulk", data=one, headers={"Content-Type": "application/json"})
    assert (await problem(wrong, 415))["code"] == "unsupported_media_type"
    bad_mode = await problem(await _push(client, one, "?mode=upsert"), 400)
    assert [e["field"] for e in bad_mode["errors"]] == ["mode"]
    too_many = one * (wire.MAX_BULK_LINES + 1)
    refused = await problem(await _push(client, too_many), 413)
    assert [e["field"] for e in refused["errors"]] == ["body"]
    too_big = await _push(client, b"x" * (wire.MAX_BULK_BODY + 1))
    await problem(too_big, 413)

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: refused when the limit is passed
        for _ in range(wire.MAX_BULK_BODY // 2**20 + 1):
            yield one * (2**20 // len(one) + 1)

    chunked = await client.post("/v1/customers:bulk", data=streamed(), headers=NDJSON)
    await problem(chunked, 413)
    not_utf8 = await problem(await _push(client, one + b'{"customer_id": "c-2\xff"}\n'), 400)
    assert not_utf8["errors"] == [{"field": "body", "message": f"not UTF-8 at byte {len(one) + 20}"}]
    assert (await client.get("/v1/customers/c-1")).status == 404  # none of these stored anything

    long_line = orjson.dumps({"customer_id": "c-2", "attributes": {"email": "x" * wire.MAX_BULK_LINE}})
    answer = await (await _push(client, one + long_line + b"\n")).json()
    assert answer["imported"] == 1
    assert answer["errors"] == [
        {"line": 2, "customer_id": "c-2", "field": "line", "message": f"longer than {wire.MAX_BULK_LINE} characters"}
    ]


async def test_a_channel_key_may_not_push_customers(make_client: AppFactory) -> None:
    client = await make_client(open_without_keys=False)
    access = client.app[ACCESS]
    keys = {}
    for role, channels in (("channel", ("web",)), ("crm", ())):
        _, keys[role] = await access.create_key(KeyRequest(f"{role} key", role, channels), ["web"], OPEN)
    one = _lines({"customer_id": "c-1", "attributes": {"plan": "basic"}})
    refused = await _push(client, one, Authorization=f"Bearer {keys['channel']}")
    assert (await problem(refused, 403))["code"] == "forbidden"
    taken = await _push(client, one, Authorization=f"Bearer {keys['crm']}")
    assert (await taken.json())["imported"] == 1
