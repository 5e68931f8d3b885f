"""Every class of bad input gets a 4xx problem+json naming the field; nothing is half-applied."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest

from nba.http import wire
from tests.api.helpers import Client, problem


async def _decide(client: Client, body: Any) -> dict[str, Any]:
    return await problem(await client.post("/v1/decide", json=body), 400)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": "web"}, "customer_id"),
        ({"customer_id": "", "channel": "web"}, "customer_id"),
        ({"customer_id": "x" * 129, "channel": "web"}, "customer_id"),
        ({"customer_id": "c-{1}", "channel": "web"}, "customer_id"),
        ({"customer_id": "c 1", "channel": "web"}, "customer_id"),
        ({"customer_id": 1042, "channel": "web"}, "customer_id"),
        ({"customer_id": "c-1"}, "channel"),
        ({"customer_id": "c-1", "channel": "fax"}, "channel"),
        ({"customer_id": "c-1", "channel": "web", "limit": 0}, "limit"),
        ({"customer_id": "c-1", "channel": "web", "limit": 6}, "limit"),
        ({"customer_id": "c-1", "channel": "email", "limit": 2}, "limit"),
        ({"customer_id": "c-1", "channel": "web", "limit": True}, "limit"),
        ({"customer_id": "c-1", "channel": "web", "limit": "3"}, "limit"),
        ({"customer_id": "c-1", "channel": "web", "explain": "yes"}, "explain"),
        ({"customer_id": "c-1", "channel": "web", "context": []}, "context"),
        ({"customer_id": "c-1", "channel": "web", "context": {"a": {"nested": 1}}}, "context.a"),
        ({"customer_id": "c-1", "channel": "web", "context": {"a": "x" * 257}}, "context.a"),
        ({"customer_id": "c-1", "channel": "web", "context": {"bad key": 1}}, "context.bad key"),
        ({"customer_id": "c-1", "channel": "web", "context": {f"k{i}": i for i in range(33)}}, "context"),
        ({"customer_id": "c-1", "channel": "web", "contact_id": ["x"]}, "contact_id"),
        ({"customer_id": "c-1", "channel": "web", "colour": "blue"}, "colour"),
    ],
)
async def test_decide_field_errors(client: Client, body: dict[str, Any], field: str) -> None:
    result = await _decide(client, body)
    assert result["code"] == "invalid_request"
    assert [e["field"] for e in result["errors"]] == [field]


async def test_decide_body_must_be_a_json_object(client: Client) -> None:
    assert (await _decide(client, [1, 2]))["errors"][0]["field"] == ""
    resp = await client.post("/v1/decide", data=b"{not json", headers={"Content-Type": "application/json"})
    assert (await problem(resp, 400))["code"] == "invalid_json"


async def test_media_type_and_size_limits(client: Client) -> None:
    resp = await client.post("/v1/decide", data=b'{"customer_id":"c"}', headers={"Content-Type": "text/plain"})
    assert (await problem(resp, 415))["code"] == "unsupported_media_type"
    big = b'{"customer_id":"' + b"x" * wire.MAX_DECIDE_BODY + b'"}'
    resp = await client.post("/v1/decide", data=big, headers={"Content-Type": "application/json"})
    assert (await problem(resp, 413))["code"] == "payload_too_large"
    huge = b"[" + b"0," * (wire.MAX_EVENTS_BODY // 2) + b"0]"
    resp = await client.post("/v1/events", data=io.BytesIO(huge), headers={"Content-Type": "application/json"})
    assert (await problem(resp, 413))["code"] == "payload_too_large"


async def test_a_body_its_content_encoding_does_not_decode_is_a_problem(client: Client) -> None:
    body = b'{"customer_id": "c-1", "channel": "web"}'  # said to be gzip, and it is not
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    resp = await client.post("/v1/decide", data=body, headers=headers)
    assert [e["field"] for e in (await problem(resp, 400))["errors"]] == ["body"]


async def test_routing_errors_are_problems_too(client: Client) -> None:
    assert (await problem(await client.get("/v1/nothing"), 404))["code"] == "not_found"
    assert (await problem(await client.get("/v1/decide"), 405))["code"] == "method_not_allowed"
    body = await problem(await client.get("/v1/customers/c-{1}"), 400)
    assert body["errors"][0]["field"] == "customer_id"


async def test_customer_body_errors(client: Client) -> None:
    body = await problem(await client.put("/v1/customers/c-1", json={"attrs": {}}), 400)
    assert {e["field"] for e in body["errors"]} == {"attrs", "attributes"}
    body = await problem(await client.put("/v1/customers/c-1", json={"attributes": {"plan": None}}), 400)
    assert body["errors"][0]["field"] == "attributes.plan"


async def test_events_body_errors(client: Client) -> None:
    for payload, field in (
        ({}, "events"),
        ({"events": []}, "events"),
        ({"events": "x"}, "events"),
        ({"events": [1]}, "events[0]"),
        (
            {
                "events": [
                    {
                        "event_id": "e",
                        "type": "accept",
                        "customer_id": "c",
                        "action_id": "tv-addon",
                        "channel": "web",
                        "properties": {"x": "y" * 5000},
                    }
                ]
            },
            "events[0].properties",
        ),
        (
            {
                "events": [
                    {
                        "event_id": "e",
                        "type": "accept",
                        "customer_id": "c",
                        "action_id": "tv-addon",
                        "channel": "web",
                        "extra": 1,
                    }
                ]
            },
            "events[0].extra",
        ),
        (
            {
                "events": [
                    {"event_id": "e", "type": "accept", "customer_id": "c", "action_id": "made-up", "channel": "web"}
                ]
            },
            "events[0].action_id",
        ),
    ):
        body = await problem(await client.post("/v1/events", json=payload), 400)
        assert [e["field"] for e in body["errors"]] == [field], payload


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"x": value}
    return value


@pytest.mark.parametrize("depth", [17, 300, 1000])
async def test_deeply_nested_properties_are_refused_naming_the_field(client: Client, depth: int) -> None:
    event = {
        "event_id": "e",
        "type": "accept",
        "customer_id": "c",
        "action_id": "tv-addon",
        "channel": "web",
        "properties": _nested(depth),
    }
    # orjson writes at most 255 levels: the body is built by hand
    body = orjson.dumps({"events": [{**event, "properties": {}}]}).replace(
        b'"properties":{}', b'"properties":' + b'{"x":' * (depth - 1) + b'{"leaf":1}' + b"}" * (depth - 1)
    )
    resp = await client.post("/v1/events", data=body, headers={"Content-Type": "application/json"})
    problem_body = await problem(resp, 400)
    assert [e["field"] for e in problem_body["errors"]] == ["events[0].properties"]
    assert "nested deeper than 16" in problem_body["errors"][0]["message"]
    assert wire.too_deep(event["properties"], wire.MAX_PROPERTIES_DEPTH)


async def test_properties_nested_to_the_limit_are_accepted(client: Client) -> None:
    event = {
        "event_id": "e",
        "type": "accept",
        "customer_id": "c",
        "action_id": "tv-addon",
        "channel": "web",
        "properties": {"list": [[[1]]], "deep": _nested(wire.MAX_PROPERTIES_DEPTH - 1)},
    }
    assert (await client.post("/v1/events", json={"events": [event]})).status == 202


async def test_a_body_nested_past_the_parser_s_limit_is_invalid_json(client: Client) -> None:
    body = b"[" * 5000 + b"]" * 5000
    resp = await client.post("/v1/events", data=body, headers={"Content-Type": "application/json"})
    assert (await problem(resp, 400))["code"] == "invalid_json"


def test_too_deep_counts_levels_of_objects_and_lists() -> None:
    assert not wire.too_deep({}, 1)
    assert not wire.too_deep({"a": 1, "b": [1, 2]}, 2)
    assert wire.too_deep({"a": [1]}, 1)
    assert wire.too_deep([[[]]], 2)
    assert not wire.too_deep([[[]]], 3)
