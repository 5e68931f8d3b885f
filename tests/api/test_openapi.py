"""/openapi.json matches the routes, and real responses validate against its schemas."""

from __future__ import annotations

from typing import Any

import jsonschema

from nba.http.openapi import openapi_document
from nba.http.routes import PERMISSIONS, ROUTES
from nba.rules.load import load_rulebook
from tests.api.helpers import CROSSSELL_MOBILE, Client, decide, put_customer, send_events
from tests.conftest import RULES

DOC = openapi_document(load_rulebook(RULES), PERMISSIONS)


def _validate(body: Any, schema_name: str) -> None:
    doc = DOC
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": doc["components"]}
    jsonschema.Draft202012Validator(schema).validate(body)


def test_paths_and_methods_match_the_routes() -> None:
    doc = DOC
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops if m != "parameters"}
    assert documented == {(m, p) for m, p, _, _ in ROUTES}


def test_document_is_a_valid_openapi_31_shape() -> None:
    doc = DOC
    assert doc["openapi"] == "3.1.0"
    jsonschema.Draft202012Validator.check_schema({"components": doc["components"]})
    for name, schema in doc["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema), name


async def test_served_document_and_real_responses_validate(client: Client) -> None:
    assert await (await client.get("/openapi.json")).json() == DOC
    customer = await put_customer(client, "c-1", CROSSSELL_MOBILE)
    _validate(customer, "Customer")
    d = await decide(client, "c-1", explain=True)
    _validate(d, "Decision")
    assert d["explain"]
    result = await send_events(
        client,
        [
            {
                "event_id": "e",
                "type": "impression",
                "customer_id": "c-1",
                "action_id": d["actions"][0]["action_id"],
                "decision_id": d["decision_id"],
                "channel": "web",
            }
        ],
    )
    _validate(result, "EventsAccepted")
    _validate(await (await client.get("/v1/rules")).json(), "Rules")
    _validate(await (await client.get("/v1/actions/stats")).json(), "ActionStats")
    _validate(await (await client.get("/readyz")).json(), "Status")
    bad = await client.post("/v1/decide", json={"channel": "fax"})
    _validate(await bad.json(), "Problem")


def test_request_schemas_accept_the_design_examples() -> None:
    _validate(
        {
            "customer_id": "c-1042",
            "channel": "web",
            "context": {"page": "mortgage", "device": "mobile"},
            "limit": 3,
            "explain": False,
            "contact_id": "call-1",
        },
        "DecideRequest",
    )
    _validate(
        {
            "events": [
                {
                    "event_id": "e-1",
                    "type": "accept",
                    "customer_id": "c-1042",
                    "action_id": "broadband-bundle",
                    "decision_id": "d1",
                    "channel": "call_center",
                    "ts": "2026-11-23T10:00:00Z",
                    "properties": {},
                }
            ]
        },
        "EventsRequest",
    )


async def test_metrics_and_health(client: Client) -> None:
    await decide(client, "c-9")
    text = await (await client.get("/metrics")).text()
    for name in (
        "nba_decisions_total",
        "nba_decision_duration_seconds_bucket",
        "nba_redis_call_duration_seconds_bucket",
        "nba_rules_info{",
        "nba_http_request_duration_seconds_bucket",
        "nba_events_total",
    ):
        assert name in text
    assert (await client.get("/healthz")).status == 200


async def test_the_document_follows_the_rules_in_use(make_client: Any, rules_copy: Any) -> None:
    profile = rules_copy / "profile.yaml"
    profile.write_text(profile.read_text() + "  loyalty_tier:     {type: list, values: [gold, silver]}\n")
    channels = rules_copy / "channels.yaml"
    channels.write_text(channels.read_text() + "  kiosk:       {direction: inbound,  default_limit: 1, max_limit: 2}\n")
    client = await make_client(load_rulebook(rules_copy))
    doc = await (await client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    assert "kiosk" in schemas["Event"]["properties"]["channel"]["enum"]
    kiosk = next(c for c in schemas["DecideRequest"]["allOf"] if c["if"]["properties"]["channel"]["const"] == "kiosk")
    assert kiosk["then"]["properties"]["limit"]["maximum"] == 2
    tier = schemas["CustomerWrite"]["properties"]["attributes"]["properties"]["loyalty_tier"]
    assert tier["items"] == {"enum": ["gold", "silver"]}
    assert schemas["CustomerPatch"]["properties"]["attributes"]["properties"]["loyalty_tier"]["anyOf"][1] == {
        "type": "null"
    }


async def test_rules_name_each_channel_s_model(client: Client) -> None:
    learning = (await (await client.get("/v1/rules")).json())["learning"]
    rulebook = load_rulebook(RULES)
    assert learning["models"] == {ch: rulebook.learning.for_channel(ch).model for ch in rulebook.channels}
