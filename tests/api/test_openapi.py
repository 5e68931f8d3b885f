"""/openapi.json matches the routes, and real responses validate against its schemas."""

from __future__ import annotations

from typing import Any

import jsonschema
from aiohttp import web

from nba.http.openapi import openapi_document
from nba.http.routes import ROUTES
from tests.api.helpers import CROSSSELL_MOBILE, Client, decide, put_customer, send_events


def _validate(body: Any, schema_name: str) -> None:
    doc = openapi_document()
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": doc["components"]}
    jsonschema.Draft202012Validator(schema).validate(body)


def test_paths_and_methods_match_the_routes() -> None:
    doc = openapi_document()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops if m != "parameters"}
    assert documented == {(m, p) for m, p, _ in ROUTES}


def test_document_is_a_valid_openapi_31_shape() -> None:
    doc = openapi_document()
    assert doc["openapi"] == "3.1.0"
    jsonschema.Draft202012Validator.check_schema({"components": doc["components"]})
    for name, schema in doc["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema), name


async def test_served_document_and_real_responses_validate(client: Client) -> None:
    assert await (await client.get("/openapi.json")).json() == openapi_document()
    customer = await put_customer(client, "c-1", CROSSSELL_MOBILE)
    _validate(customer, "Customer")
    d = await decide(client, "c-1", explain=True)
    _validate(d, "Decision")
    assert d["explain"]
    result = await send_events(client, [{"event_id": "e", "type": "impression", "customer_id": "c-1",
                                         "action_id": d["actions"][0]["action_id"],
                                         "decision_id": d["decision_id"], "channel": "web"}])
    _validate(result, "EventsAccepted")
    _validate(await (await client.get("/v1/rules")).json(), "Rules")
    _validate(await (await client.get("/v1/actions/stats")).json(), "ActionStats")
    _validate(await (await client.get("/readyz")).json(), "Status")
    bad = await client.post("/v1/decide", json={"channel": "fax"})
    _validate(await bad.json(), "Problem")


def test_request_schemas_accept_the_design_examples() -> None:
    _validate({"customer_id": "c-1042", "channel": "web", "context": {"page": "mortgage", "device": "mobile"},
               "limit": 3, "explain": False, "contact_id": "call-1"}, "DecideRequest")
    _validate({"events": [{"event_id": "e-1", "type": "accept", "customer_id": "c-1042",
                           "action_id": "broadband-bundle", "decision_id": "d1", "channel": "call_center",
                           "ts": "2026-11-23T10:00:00Z", "properties": {}}]}, "EventsRequest")


async def test_metrics_and_health(client: Client) -> None:
    await decide(client, "c-9")
    text = await (await client.get("/metrics")).text()
    for name in ("nba_decisions_total", "nba_decision_duration_ms_bucket", "nba_redis_call_duration_ms_bucket",
                 "nba_rules_info", "nba_events_total"):
        assert name in text
    assert (await client.get("/healthz")).status == 200
    assert isinstance(web.Application, type)
