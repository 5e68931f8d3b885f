"""Access control over HTTP: every route for every role (allowed and refused), keys, expiry, rates,
browsers (CORS headers), health details, and the audit trail of what changed."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from nba.access import customer_token
from nba.access.apikeys import KeyRequest
from nba.access.service import OPEN
from nba.http.access import ACCESS
from nba.http.routes import ROUTES
from nba.store import keys
from tests.api.helpers import CROSSSELL_MOBILE, Client, problem
from tests.conftest import NOW, AppFactory, Clock

ROLES = ("channel", "crm", "marketer", "analyst", "operator", "admin")

# What each role may call, written out here (not read from nba/access/roles.py, so a change of the matrix
# must change this table too): route -> roles admitted. Public routes admit everyone, with or without a key.
ALLOWED: dict[tuple[str, str], set[str]] = {
    ("POST", "/v1/decide"): {"channel", "admin"},  # marketer: only with explain: true (test below)
    ("POST", "/v1/events"): {"channel", "admin"},
    ("POST", "/v1/customers:bulk"): {"crm", "admin"},
    ("PUT", "/v1/customers/{customer_id}"): {"crm", "admin"},
    ("PATCH", "/v1/customers/{customer_id}"): {"crm", "admin"},
    ("GET", "/v1/customers/{customer_id}"): {"crm", "admin"},
    ("DELETE", "/v1/customers/{customer_id}"): {"crm", "admin"},
    ("GET", "/v1/rules"): {"marketer", "analyst", "operator", "admin"},
    ("POST", "/v1/rules/reload"): {"marketer", "admin"},
    ("POST", "/v1/rules/rollback"): {"marketer", "admin"},
    ("GET", "/v1/actions/stats"): {"marketer", "analyst", "admin"},
    ("GET", "/v1/board/performance"): {"marketer", "analyst", "admin"},
    ("GET", "/v1/board/learning"): {"marketer", "analyst", "operator", "admin"},
    ("GET", "/v1/rules/versions"): {"marketer", "analyst", "operator", "admin"},
    ("GET", "/v1/rules/diff"): {"marketer", "analyst", "operator", "admin"},
    # the board's sign-in checks the key (or cookie) itself: tests/api/test_board_session.py
    ("GET", "/board/session"): set(ROLES),
    ("POST", "/board/session"): set(ROLES),
    ("DELETE", "/board/session"): set(ROLES),
    ("GET", "/v1/decisions/export"): {"analyst", "admin"},
    ("GET", "/v1/keys"): {"admin"},
    ("POST", "/v1/keys"): {"admin"},
    ("DELETE", "/v1/keys/{key_id}"): {"admin"},
    ("GET", "/v1/audit"): {"admin"},
    ("POST", "/v1/outbound/runs"): {"marketer", "admin"},
    ("GET", "/v1/outbound/runs"): {"crm", "marketer", "analyst", "admin"},
    ("GET", "/v1/outbound/runs/{run_id}"): {"crm", "marketer", "analyst", "admin"},  # lead management: crm
    ("GET", "/v1/outbound/runs/{run_id}/selection"): {"crm", "marketer", "analyst", "admin"},
    ("GET", "/metrics"): {"operator", "admin"},
    ("GET", "/healthz"): set(ROLES),
    ("GET", "/readyz"): set(ROLES),
    ("GET", "/openapi.json"): set(ROLES),  # any key: it names the rules' actions and attributes
    ("GET", "/board"): set(ROLES),  # the board's page: no data in it
    ("GET", "/board/"): set(ROLES),
    ("GET", "/board/{asset}"): set(ROLES),
}
PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/board"), ("GET", "/board/"), ("GET", "/board/{asset}")}
SESSION = {("GET", "/board/session"), ("POST", "/board/session"), ("DELETE", "/board/session")}
CUSTOMER = {"attributes": CROSSSELL_MOBILE}


def _request(method: str, path: str) -> tuple[str, dict[str, Any] | None]:
    """A well-formed request for each route."""
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/v1/decide"): {"customer_id": "c-1", "channel": "web"},
        ("POST", "/v1/events"): {
            "events": [
                {"event_id": "e-1", "type": "click", "customer_id": "c-1", "action_id": "tv-addon", "channel": "web"}
            ]
        },
        ("PUT", "/v1/customers/{customer_id}"): CUSTOMER,
        ("PATCH", "/v1/customers/{customer_id}"): {"attributes": {"plan": "large"}},
        ("POST", "/v1/keys"): {"name": "made by a test", "role": "analyst"},
        ("POST", "/v1/outbound/runs"): {"channel": "email", "dry_run": True},
    }
    url = (
        path.replace("{customer_id}", "c-1")
        .replace("{key_id}", "0123456789ab")
        .replace("{run_id}", "run-0123456789abcdef0123")
        .replace("{asset}", "board.js")
    )
    return url, bodies.get((method, path))


async def _key(client: Client, role: str, **extra: Any) -> str:
    app = client.app
    assert app is not None
    access = app[ACCESS]
    channels = ("web",) if role == "channel" else ()
    req = KeyRequest(f"{role} key", role, extra.pop("channels", channels), **extra)
    _, secret = await access.create_key(req, ["web", "app", "call_center", "email"], OPEN)
    return secret


async def _call(client: Client, method: str, url: str, body: Any, key: str | None, **headers: str) -> Any:
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return await client.request(method, url, json=body, headers=headers)


async def test_the_role_matrix_covers_every_route() -> None:
    assert {(m, p) for m, p, _, _ in ROUTES} == set(ALLOWED)


@pytest.mark.parametrize("role", ROLES)
async def test_every_route_admits_its_roles_and_refuses_the_others(make_client: AppFactory, role: str) -> None:
    client = await make_client(open_without_keys=False)
    key = await _key(client, role)
    admin = await _key(client, "admin")
    for (method, path), roles in ALLOWED.items():
        if (method, path) in SESSION:
            continue
        await _call(client, "PUT", "/v1/customers/c-1", CUSTOMER, admin)  # DELETE may have erased it
        url, body = _request(method, path)
        resp = await _call(client, method, url, body, key)
        if role in roles:
            assert resp.status not in (401, 403, 429), (role, method, path, await resp.text())
            assert resp.status < 500, (role, method, path, await resp.text())
        else:
            body_ = await problem(resp, 403)
            assert body_["code"] == "forbidden", (role, method, path)
        if (method, path) not in PUBLIC:  # and nobody without a key
            anonymous = await _call(client, method, url, body, None)
            assert (await problem(anonymous, 401))["code"] == "missing_key"
            assert anonymous.headers["WWW-Authenticate"] == 'Bearer realm="nba"'


async def test_a_marketer_may_preview_with_explain_only_and_a_preview_records_nothing(
    make_client: AppFactory, redis: Redis
) -> None:
    client = await make_client(open_without_keys=False)
    key = await _key(client, "marketer")
    admin = await _key(client, "admin")
    assert (await _call(client, "PUT", "/v1/customers/c-1", CUSTOMER, admin)).status == 200
    body = {"customer_id": "c-1", "channel": "call_center"}
    for _ in range(5):  # previews: never a reservation, so the caps stay whole
        preview = await _call(client, "POST", "/v1/decide", {**body, "explain": True}, key)
        answer = await preview.json()
        assert preview.status == 200
        assert answer["dry_run"] is True
        assert answer["actions"]
    assert await redis.exists(keys.decisions("c-1")) == 0
    await problem(await _call(client, "POST", "/v1/decide", body, key), 403)
    real = await (await _call(client, "POST", "/v1/decide", {**body, "explain": True}, admin)).json()
    assert "dry_run" not in real
    assert await redis.exists(keys.decisions("c-1")) == 1


async def test_a_dry_run_decides_and_records_nothing_for_any_key_that_may_preview(
    make_client: AppFactory, redis: Redis
) -> None:
    client = await make_client(open_without_keys=False)
    channel = await _key(client, "channel", channels=("call_center",))
    marketer = await _key(client, "marketer")
    admin = await _key(client, "admin")
    assert (await _call(client, "PUT", "/v1/customers/c-1", CUSTOMER, admin)).status == 200
    body = {"customer_id": "c-1", "channel": "call_center", "dry_run": True}
    for key in (channel, marketer) * 4:  # more previews than policy.yaml's caps would let decisions make
        answer = await (await _call(client, "POST", "/v1/decide", body, key)).json()
        assert answer["dry_run"] is True
    assert await redis.exists(keys.decisions("c-1")) == 0
    assert not await redis.hexists(keys.customer("c-1"), "h")  # no reservation in the history
    wrong = await _call(client, "POST", "/v1/decide", {**body, "dry_run": "yes"}, channel)
    assert [e["field"] for e in (await problem(wrong, 400))["errors"]] == ["dry_run"]


async def test_a_channel_key_is_bound_to_its_channels(make_client: AppFactory) -> None:
    client = await make_client(open_without_keys=False)
    web = await _key(client, "channel", channels=("web", "app"))
    admin = await _key(client, "admin")
    assert (await _call(client, "PUT", "/v1/customers/c-1", CUSTOMER, admin)).status == 200
    for channel, status in (("web", 200), ("app", 200), ("call_center", 403), ("email", 403)):
        resp = await _call(client, "POST", "/v1/decide", {"customer_id": "c-1", "channel": channel}, web)
        assert resp.status == status, (channel, await resp.text())
    event = {"type": "click", "customer_id": "c-1", "action_id": "tv-addon"}
    mixed = {
        "events": [
            {**event, "event_id": "e-1", "channel": "web"},
            {**event, "event_id": "e-2", "channel": "call_center"},
        ]
    }
    refused = await problem(await _call(client, "POST", "/v1/events", mixed, web), 403)
    assert refused["code"] == "channel_forbidden"
    assert "call_center" in refused["detail"]
    # nothing of the refused batch was applied
    assert (await _call(client, "POST", "/v1/events", {"events": mixed["events"][:1]}, web)).status == 202
    history = (await (await _call(client, "GET", "/v1/customers/c-1", None, admin)).json())["history"]
    assert history["events"] == 1


async def test_unknown_revoked_mistyped_and_expired_keys_are_refused(make_client: AppFactory) -> None:
    clock = Clock()
    client = await make_client(open_without_keys=False, clock=clock)
    key = await _key(client, "crm", expires="1h")
    assert (await _call(client, "GET", "/v1/customers/c-1", None, key)).status == 404  # admitted: no such customer
    for bad in (key[:-1] + ("A" if key[-1] != "A" else "B"), "nba_0123456789ab_" + "x" * 43, "garbage", key + " x"):
        resp = await _call(client, "GET", "/v1/customers/c-1", None, bad)
        assert (await problem(resp, 401))["code"] == "invalid_key", bad
        assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    resp = await client.get("/v1/customers/c-1", headers={"Authorization": f"Basic {key}"})
    assert (await problem(resp, 401))["code"] == "missing_key"
    clock.now = NOW + 3600
    expired = await problem(await _call(client, "GET", "/v1/customers/c-1", None, key), 401)
    assert "expired" in expired["detail"]
    clock.now = NOW
    app = client.app
    assert app is not None
    key_id = key.split("_")[1]
    await app[ACCESS].revoke_key(key_id, OPEN)
    await problem(await _call(client, "GET", "/v1/customers/c-1", None, key), 401)


async def test_an_open_server_admits_everyone_until_the_first_key(make_client: AppFactory, redis: Redis) -> None:
    client = await make_client()  # open_without_keys: a server on loopback
    assert (await client.get("/v1/keys")).status == 200
    created = await client.post("/v1/keys", json={"name": "first admin", "role": "admin"})
    assert created.status == 201
    secret = (await created.json())["key"]
    assert await redis.hget(keys.ACCESS_KEYS, secret.split("_")[1]) is not None
    records: Any = await redis.hvals(keys.ACCESS_KEYS)
    assert secret.encode() not in b"".join(records)  # only its hash is kept
    await problem(await client.get("/v1/keys"), 401)  # closed from the first key on
    assert (await _call(client, "GET", "/v1/keys", None, secret)).status == 200
    # revoking the last key does not open it again: a server that had keys stays closed
    app = client.app
    assert app is not None
    await app[ACCESS].revoke_key(secret.split("_")[1], OPEN)
    await problem(await client.get("/v1/actions/stats"), 401)
    # a server that may not run open refuses everything needing a role while there are no keys
    await redis.flushdb()
    closed = await make_client(open_without_keys=False)
    await problem(await closed.get("/v1/actions/stats"), 401)


async def test_an_open_server_answers_only_loopback_callers(make_client: AppFactory) -> None:
    client = await make_client()
    assert (await client.get("/v1/rules", headers={"Host": "localhost:8080"})).status == 200
    rebound = await client.get("/v1/customers/c-1", headers={"Host": "attacker.example"})
    assert (await problem(rebound, 403))["code"] == "open_server_host"
    cross_site = await client.post("/v1/rules/reload", headers={"Origin": "https://attacker.example"})
    assert (await problem(cross_site, 403))["code"] == "origin_forbidden"
    local_page = await client.get("/v1/rules", headers={"Origin": "http://localhost:3000"})
    assert local_page.status == 200
    # a probe speaking HTTP/1.0 without a Host header is no browser
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(b"GET /v1/rules HTTP/1.0\r\n\r\n")
    assert (await reader.readline()).startswith(b"HTTP/1.0 200")
    writer.close()
    await writer.wait_closed()
    # --insecure-open: something in front of nba answers for its callers
    behind_a_gateway = await make_client(loopback_callers_only=False)
    assert (await behind_a_gateway.get("/v1/rules", headers={"Host": "nba.internal"})).status == 200


async def test_a_key_s_rate_is_enforced_with_retry_after(make_client: AppFactory) -> None:
    clock = Clock()
    client = await make_client(open_without_keys=False, clock=clock)
    key = await _key(client, "analyst", rate=3)
    statuses = [(await _call(client, "GET", "/v1/rules", None, key)).status for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    limited = await _call(client, "GET", "/v1/rules", None, key)
    assert (await problem(limited, 429))["code"] == "rate_limited"
    assert limited.headers["Retry-After"] == "1"
    clock.now += 1.0  # a second later the bucket holds 3 again
    assert [(await _call(client, "GET", "/v1/rules", None, key)).status for _ in range(4)] == [200, 200, 200, 429]
    other = await _key(client, "analyst", rate=0)  # 0: unlimited, and each key has its own bucket
    assert {(await _call(client, "GET", "/v1/rules", None, other)).status for _ in range(20)} == {200}


async def test_health_details_only_for_the_operator(make_client: AppFactory) -> None:
    client = await make_client(open_without_keys=False)
    operator, channel = await _key(client, "operator"), await _key(client, "channel")
    for key in (None, channel):
        assert await (await _call(client, "GET", "/healthz", None, key)).json() == {"status": "ok"}
        assert await (await _call(client, "GET", "/readyz", None, key)).json() == {"status": "ready"}
    assert "pid" in await (await _call(client, "GET", "/healthz", None, operator)).json()
    assert "rules_version" in await (await _call(client, "GET", "/readyz", None, operator)).json()


def _token(client: Client, key: str, customer_id: str, expires: float = NOW + 3600) -> str:
    app = client.app
    assert app is not None
    record = app[ACCESS].keyring.keys[key.split("_")[1]]
    return customer_token.sign(record.signing, record.id, customer_id, int(expires))


async def test_a_browser_key_acts_only_for_the_customer_its_token_names(make_client: AppFactory) -> None:
    client = await make_client(open_without_keys=False)
    shop = await _key(client, "channel", origins=("https://shop.example.com",))
    page = {"Origin": "https://shop.example.com"}
    body = {"customer_id": "c-1", "channel": "web"}
    token = _token(client, shop, "c-1")
    ok = await _call(client, "POST", "/v1/decide", body, shop, **page, **{"Nba-Customer-Token": token})
    assert ok.status == 200
    missing = await _call(client, "POST", "/v1/decide", body, shop, **page)
    assert (await problem(missing, 403))["code"] == "customer_token_required"
    for bad in (
        _token(client, shop, "c-2"),  # another customer's
        _token(client, shop, "c-1", NOW - 1),  # expired
        _token(client, shop, "c-1", NOW + 8 * 86400),  # longer than a week
        token[:-2] + "xx",  # tampered
        "c-1.9999999999.x",
    ):
        refused = await _call(client, "POST", "/v1/decide", body, shop, **page, **{"Nba-Customer-Token": bad})
        assert (await problem(refused, 403))["code"] == "customer_token_invalid", bad
    event = {"type": "click", "action_id": "tv-addon", "channel": "web"}
    two = {
        "events": [
            {**event, "event_id": "e-1", "customer_id": "c-1"},
            {**event, "event_id": "e-2", "customer_id": "c-2"},
        ]
    }
    refused = await _call(client, "POST", "/v1/events", two, shop, **page, **{"Nba-Customer-Token": token})
    assert (await problem(refused, 403))["code"] == "customer_token_invalid"
    one = {"events": two["events"][:1]}
    assert (await _call(client, "POST", "/v1/events", one, shop, **page, **{"Nba-Customer-Token": token})).status == 202
    # a browser key created to name any customer (no server to sign tokens): taken at its word
    anyone = await _key(client, "channel", origins=("https://shop.example.com",), unsigned_customers=True)
    assert (await _call(client, "POST", "/v1/decide", body, anyone, **page)).status == 200


async def test_cors_headers_for_the_origins_of_the_calling_key(make_client: AppFactory) -> None:
    client = await make_client(open_without_keys=False)
    shop = await _key(client, "channel", origins=("https://shop.example.com",), unsigned_customers=True)
    other = await _key(client, "channel")
    pre = await client.options(
        "/v1/decide",
        headers={
            "Origin": "https://shop.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert pre.status == 204
    assert pre.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in pre.headers
    refused = await client.options(
        "/v1/decide", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert refused.status == 403
    assert "Access-Control-Allow-Origin" not in refused.headers
    body = {"customer_id": "c-1", "channel": "web"}
    ok = await _call(client, "POST", "/v1/decide", body, shop, Origin="https://shop.example.com")
    assert ok.status == 200
    assert ok.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert ok.headers["Vary"] == "Origin"
    not_its_origin = await _call(client, "POST", "/v1/decide", body, other, Origin="https://shop.example.com")
    # a key used from a page its origins do not name is refused before anything is decided or stored
    assert (await problem(not_its_origin, 403))["code"] == "origin_forbidden"
    assert "Access-Control-Allow-Origin" not in not_its_origin.headers
    elsewhere = await _call(client, "POST", "/v1/decide", body, shop, Origin="https://evil.example")
    assert (await problem(elsewhere, 403))["code"] == "origin_forbidden"
    assert "Access-Control-Allow-Origin" not in elsewhere.headers
    assert elsewhere.headers["Vary"] == "Origin"
    # servers (no Origin) use the same keys as ever
    assert (await _call(client, "POST", "/v1/decide", body, shop)).headers["Vary"] == "Origin"
    assert (await _call(client, "POST", "/v1/decide", body, other)).status == 200
    assert ok.headers["Access-Control-Expose-Headers"] == "Retry-After, X-Request-Id"
    put = await client.options(
        "/v1/decide", headers={"Origin": "https://shop.example.com", "Access-Control-Request-Method": "PUT"}
    )
    assert put.status == 403
    # a page's request without a key can read why it was refused (so it can show it)
    nokey = await _call(client, "POST", "/v1/decide", body, None, Origin="https://shop.example.com")
    assert nokey.status == 401
    assert nokey.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("role", "root"),
        ("channels", ["moon"]),
        ("origins", ["https://shop.example.com/path"]),
        ("origins", ["*"]),
        ("expires", "yesterday"),
        ("expires", "2020-01-01"),
        ("rate", -1),
        ("name", ""),
    ],
)
async def test_bad_key_requests_name_the_field(client: Client, field: str, value: Any) -> None:
    body = {"name": "k", "role": "channel", "channels": ["web"], field: value}
    refused = await problem(await client.post("/v1/keys", json=body), 400)
    assert field in [e["field"] for e in refused["errors"]]
    assert (await (await client.get("/v1/keys")).json())["keys"] == []  # nothing half-made


async def test_erasures_rules_and_key_changes_are_audited_without_the_customer_id(
    make_client: AppFactory, redis: Redis, rules_copy: Any
) -> None:
    client = await make_client(open_without_keys=False, rules_dir=rules_copy)
    admin = await _key(client, "admin")
    crm = await _key(client, "crm")
    marketer = await _key(client, "marketer")
    assert (await _call(client, "PUT", "/v1/customers/c-42", CUSTOMER, crm)).status == 200
    assert (await _call(client, "DELETE", "/v1/customers/c-42", None, crm)).status == 204
    assert (await _call(client, "POST", "/v1/rules/reload", None, marketer)).status == 200
    created = await _call(client, "POST", "/v1/keys", {"name": "temp", "role": "analyst"}, admin)
    temp_id = (await created.json())["id"]
    assert (await _call(client, "DELETE", f"/v1/keys/{temp_id}", None, admin)).status == 204
    entries = (await (await _call(client, "GET", "/v1/audit", None, admin)).json())["entries"]
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("rules.reload", f"rules directory {rules_copy}"),  # the start-up's publication of the directory
        ("key.create", "anonymous (open server)"),  # the three keys of this test (_key)
        ("key.create", "anonymous (open server)"),
        ("key.create", "anonymous (open server)"),
        ("customer.erase", "crm key"),
        ("rules.reload", "marketer key"),
        ("key.create", "admin key"),
        ("key.revoke", "admin key"),
    ]
    erase = next(e for e in entries if e["action"] == "customer.erase")
    assert erase["actor"] == "crm key"
    assert erase["role"] == "crm"
    assert erase["actor_id"] == crm.split("_")[1]
    assert "c-42" not in erase["target"]
    stream: Any = await redis.xrange(keys.AUDIT_LOG)
    raw = b"".join(v for _, f in stream for v in f.values())
    assert b"c-42" not in raw
    assert b"a@example.nl" not in raw
    # an auditor holding the id can confirm it was erased
    mine = await _call(client, "GET", "/v1/audit?customer_id=c-42", None, admin)
    assert [e["action"] for e in (await mine.json())["entries"]] == ["customer.erase"]
    other = await _call(client, "GET", "/v1/audit?customer_id=c-43", None, admin)
    assert (await other.json())["entries"] == []
    assert (await redis.ttl(keys.AUDIT_LOG)) == -1  # retention is by trimming, not expiry


async def test_the_decision_log_is_exported_as_json_lines(make_client: AppFactory) -> None:
    client = await make_client(open_without_keys=False)
    analyst, admin = await _key(client, "analyst"), await _key(client, "admin")
    await _call(client, "PUT", "/v1/customers/c-1", CUSTOMER, admin)
    decided = [
        (await (await _call(client, "POST", "/v1/decide", {"customer_id": "c-1", "channel": "web"}, admin)).json())[
            "decision_id"
        ]
        for _ in range(3)
    ]
    resp = await _call(client, "GET", "/v1/decisions/export", None, analyst)
    assert resp.status == 200
    assert resp.content_type == "application/x-ndjson"
    lines = [orjson.loads(line) for line in (await resp.read()).splitlines()]
    assert sorted(r["decision_id"] for r in lines) == sorted(decided)
    assert all("rewards" in r for r in lines)


@pytest.mark.single_redis  # maxmemory of one server
async def test_a_full_redis_is_answered_503_storage_full(client: Client, redis: Redis) -> None:
    used = (await redis.info("memory"))["used_memory"]
    await redis.config_set("maxmemory", used)  # noeviction (the default policy): every write fails
    try:
        full = await client.put("/v1/customers/c-1", json=CUSTOMER)
        body = await problem(full, 503)
        assert body["code"] == "storage_full"
        assert full.headers["Retry-After"] == "1"
    finally:
        await redis.config_set("maxmemory", 0)
    assert (await client.put("/v1/customers/c-1", json=CUSTOMER)).status == 200
