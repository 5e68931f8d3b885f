"""Structured logs and request ids: what an operator greps for must be on every line of a request."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from nba import logs
from nba.http.requestlog import HEADER
from nba.settings import Settings, SettingsError
from tests.api.helpers import CROSSSELL_MOBILE, Client, put_customer
from tests.serving import Serve, call


def _record(msg: str, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    record = logging.LogRecord("nba.test", logging.WARNING, __file__, 1, msg, (), exc_info)
    record.created = 1_800_000_000.25
    return record


def test_json_lines_carry_the_request_context() -> None:
    fmt, context = logs.JsonFormatter(), logs.ContextFilter()
    token = logs.request_id.set("r-1"), logs.decision_id.set("d-1")
    try:
        record = _record('a "quoted"\nline', exc=True)
        context.filter(record)
        out = json.loads(fmt.format(record))
    finally:
        logs.request_id.reset(token[0])
        logs.decision_id.reset(token[1])
    assert out["ts"] == "2027-01-15T08:00:00.250Z"
    assert out["level"] == "WARNING"
    assert out["logger"] == "nba.test"
    assert out["message"] == 'a "quoted"\nline'  # one line of output all the same: JSON escapes it
    assert out["request_id"] == "r-1"
    assert out["decision_id"] == "d-1"
    assert "key_id" not in out  # none known: left out rather than null
    assert "ValueError: boom" in out["exception"]
    outside = _record("later")
    context.filter(outside)  # outside the request: no ids
    assert set(json.loads(fmt.format(outside))) == {"ts", "level", "logger", "message"}


def test_text_lines_name_the_request_before_any_traceback() -> None:
    fmt, context = logs.TextFormatter(), logs.ContextFilter()
    token = logs.request_id.set("r-2")
    try:
        record = _record("failed", exc=True)
        context.filter(record)
        head, _, rest = fmt.format(record).partition("\n")
    finally:
        logs.request_id.reset(token)
    assert head.endswith("WARNING nba.test failed [request_id=r-2]")
    assert "ValueError: boom" in rest


def test_a_text_line_cannot_be_forged_by_what_a_caller_sent() -> None:
    fmt = logs.TextFormatter()
    forged = "GET /x\n2026-12-01 00:00:00,000 WARNING nba FORGED\rline\x1b[31m"
    out = fmt.format(_record(forged))
    first, *rest = out.split("\n")
    assert first.endswith("WARNING nba.test GET /x")
    assert rest == ["    2026-12-01 00:00:00,000 WARNING nba FORGED\\x0dline\\x1b[31m"]  # a continuation


def test_a_json_line_keeps_a_message_orjson_refuses() -> None:
    # a file name that was not UTF-8 reaches Python as lone surrogates, which orjson will not encode
    out = json.loads(logs.JsonFormatter().format(_record("invalid rules in bad-\udcff.yaml")))
    assert out["message"] == "invalid rules in bad-\udcff.yaml"


@pytest.mark.parametrize(
    ("given", "kept"),
    [("abc-123", True), ("x" * 128, True), ("x" * 129, False), ("two words", False), ("a\r\nSet-Cookie: x", False)],
)
def test_a_request_id_is_taken_only_when_it_is_safe_to_echo(given: str, kept: bool) -> None:
    taken = logs.take_request_id(given)
    assert (taken == given) is kept
    assert len(taken) <= 128


def test_log_settings_are_validated_at_load() -> None:
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({}).access_log is True
    assert Settings.from_env({"NBA_LOG_FORMAT": "json", "NBA_ACCESS_LOG": "0"}).access_log is False
    with pytest.raises(SettingsError, match="NBA_LOG_FORMAT"):
        Settings.from_env({"NBA_LOG_FORMAT": "xml"})
    with pytest.raises(SettingsError, match="NBA_ACCESS_LOG"):
        Settings.from_env({"NBA_ACCESS_LOG": "yes"})


async def test_every_response_carries_a_request_id_and_the_access_log_names_it(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    with caplog.at_level(logging.INFO, logger=logs.ACCESS_LOGGER):
        resp = await client.post("/v1/decide", json={"customer_id": "c-1", "channel": "web"}, headers={HEADER: "t-1"})
        decision = await resp.json()
        refused = await client.post("/v1/decide", json={"channel": "web"})
        missing = await client.get("/no-such-page")
    assert resp.headers[HEADER] == "t-1"
    generated = {refused.headers[HEADER], missing.headers[HEADER]}
    assert len(generated) == 2  # new, and different each time
    assert all(len(g) == 16 for g in generated)
    lines = [r for r in caplog.records if r.name == logs.ACCESS_LOGGER]
    by_id = {getattr(r, "request_id", None): r for r in lines}
    assert set(by_id) >= {"t-1", *generated}
    first = by_id["t-1"]
    assert getattr(first, "decision_id", None) == decision["decision_id"]
    assert getattr(first, "fields", {})["status"] == 200
    assert getattr(by_id[refused.headers[HEADER]], "fields", {})["status"] == 400


async def test_the_access_log_names_the_route_not_the_customer(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=logs.ACCESS_LOGGER):
        await client.get("/v1/customers/c-secret-42", headers={HEADER: "who"})
        await client.get("/no/such%0Apage", headers={HEADER: "nowhere"})
    lines = {getattr(r, "request_id", None): r for r in caplog.records if r.name == logs.ACCESS_LOGGER}
    known, unknown = lines["who"], lines["nowhere"]
    # an erasure leaves only a keyed hash of a customer id (the audit trail): the log must not keep it
    assert "c-secret-42" not in known.getMessage()
    assert getattr(known, "fields", {})["path"] == "/v1/customers/{customer_id}"
    assert getattr(unknown, "fields", {})["path"] == "/no/such\\npage"  # shown, escaped


@pytest.mark.slow
def test_json_logs_of_a_served_request(tmp_path: Path) -> None:
    server = Serve(tmp_path, "--demo-customers", "5", env={"NBA_LOG_FORMAT": "json"})
    try:
        server.wait_ready()
        status, body = call(
            server.url("/v1/decide"), {"customer_id": "c-1000", "channel": "web"}, headers={HEADER: "from-the-page"}
        )
        assert status == 200
        assert server.stop() == 0
    finally:
        server.kill_all()
    lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.strip()]  # each a JSON object
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    decide = [line for line in lines if line.get("request_id") == "from-the-page"]
    assert len(decide) == 1
    assert decide[0]["decision_id"] == body["decision_id"]
    assert decide[0]["logger"] == logs.ACCESS_LOGGER
    assert decide[0]["path"] == "/v1/decide"


async def test_the_contract_documents_the_request_id(client: Client) -> None:
    doc = await (await client.get("/openapi.json")).json()
    decide = doc["paths"]["/v1/decide"]["post"]
    assert any(p["name"] == HEADER and p["in"] == "header" for p in decide["parameters"])
    for code, response in decide["responses"].items():
        assert HEADER in response["headers"], code
