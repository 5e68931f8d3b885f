"""The board's sign-in: an API key traded for an HttpOnly, SameSite=Strict session cookie that admits the
key's board roles to the API, with a CSRF token for every change, ended by revoking the key."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from nba.access import service, session
from nba.access.apikeys import KeyRequest
from nba.access.service import OPEN
from nba.http.access import ACCESS
from nba.store import keys
from tests.api.helpers import Client, problem
from tests.conftest import NOW, AppFactory, Clock


async def _key(client: Client, role: str) -> str:
    app = client.app
    assert app is not None
    channels = ("web",) if role == "channel" else ()
    _, secret = await app[ACCESS].create_key(KeyRequest(f"{role} key", role, channels), ["web"], OPEN)
    return secret


async def _sign_in(client: Client, key: str) -> dict[str, Any]:
    resp = await client.post("/board/session", json={"api_key": key})
    assert resp.status == 200, await resp.text()
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith(f"{session.COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    assert key.split("_", 2)[2] not in cookie  # the key's secret (it may hold _) never goes into the cookie
    body: dict[str, Any] = await resp.json()
    return body


async def test_a_marketer_signs_in_and_the_cookie_admits_its_role_only(make_client: AppFactory) -> None:
    client: Client = await make_client(open_without_keys=False)
    me = await _sign_in(client, await _key(client, "marketer"))
    assert me["role"] == "marketer"
    assert "stats" in me["permissions"]
    assert me["open"] is False
    assert (await client.get("/board/session")).status == 200
    assert (await client.get("/v1/board/performance")).status == 200  # no Authorization header: the cookie
    assert (await problem(await client.get("/v1/keys"), 403))["code"] == "forbidden"  # not a marketer's

    # a change needs the CSRF token of this session
    refused = await problem(await client.post("/v1/rules/rollback"), 403)
    assert refused["code"] == "csrf"
    wrong = await client.post("/v1/rules/rollback", headers={session.CSRF_HEADER: "x" + me["csrf"][1:]})
    assert (await problem(wrong, 403))["code"] == "csrf"
    admitted = await client.post("/v1/rules/rollback", headers={session.CSRF_HEADER: me["csrf"]})
    assert (await problem(admitted, 409))["code"] == "no_previous_rules"  # admitted; nothing to roll back
    # ... and a page of another origin may not use it, token or not
    elsewhere = await client.post(
        "/v1/rules/rollback", headers={session.CSRF_HEADER: me["csrf"], "Origin": "https://evil.example"}
    )
    assert (await problem(elsewhere, 403))["code"] == "origin_forbidden"
    preview = await client.post(
        "/v1/decide",
        json={"customer_id": "c-1", "channel": "web", "explain": True, "dry_run": True},
        headers={session.CSRF_HEADER: me["csrf"], "Origin": f"http://{client.host}:{client.port}"},
    )
    assert preview.status == 200, await preview.text()

    foreign = {session.CSRF_HEADER: me["csrf"], "Origin": "https://evil.example"}
    assert (await problem(await client.delete("/board/session", headers=foreign), 403))["code"] == "origin_forbidden"
    signed_in_elsewhere = await client.post(
        "/board/session", json={"api_key": "x"}, headers={"Origin": "https://evil.example"}
    )
    assert (await problem(signed_in_elsewhere, 403))["code"] == "origin_forbidden"
    out = await client.delete("/board/session", headers={session.CSRF_HEADER: me["csrf"]})
    assert out.status == 204
    assert (await problem(await client.get("/board/session"), 401))["code"] == "signed_out"
    assert (await problem(await client.get("/v1/board/performance"), 401))["code"] == "missing_key"


async def test_signing_out_of_a_dead_session_clears_its_cookie(make_client: AppFactory) -> None:
    client: Client = await make_client(open_without_keys=False)
    await _key(client, "admin")
    out = await client.delete("/board/session", headers={"Cookie": f"{session.COOKIE}=s1.x.1.y"})
    assert out.status == 204
    assert f"{session.COOKIE}=;" in out.headers["Set-Cookie"] or "Max-Age=0" in out.headers["Set-Cookie"]


async def test_the_cookie_is_secure_unless_the_board_is_on_loopback(make_client: AppFactory) -> None:
    client: Client = await make_client(open_without_keys=False)
    key = await _key(client, "marketer")
    local = await client.post("/board/session", json={"api_key": key})
    assert "Secure" not in local.headers["Set-Cookie"]
    proxied = await client.post("/board/session", json={"api_key": key}, headers={"Host": "nba.example.com"})
    assert proxied.status == 200
    assert "Secure" in proxied.headers["Set-Cookie"]


async def test_deleting_the_secret_ends_every_session(
    make_client: AppFactory, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "BOARD_SECRET_SECONDS", 0.0)
    client: Client = await make_client(open_without_keys=False)
    await _sign_in(client, await _key(client, "analyst"))
    assert (await client.get("/v1/board/learning")).status == 200
    await redis.delete(keys.ACCESS_BOARD_SECRET)
    assert (await problem(await client.get("/v1/board/learning"), 401))["code"] == "signed_out"


async def test_an_operator_watches_learning_health(make_client: AppFactory) -> None:
    client: Client = await make_client(open_without_keys=False)
    me = await _sign_in(client, await _key(client, "operator"))
    assert me["role"] == "operator"
    assert (await client.get("/v1/board/learning")).status == 200
    assert (await problem(await client.get("/v1/board/performance"), 403))["code"] == "forbidden"


@pytest.mark.parametrize("role", ["channel", "crm"])
async def test_system_keys_cannot_sign_in_to_the_board(make_client: AppFactory, role: str) -> None:
    client: Client = await make_client(open_without_keys=False)
    resp = await client.post("/board/session", json={"api_key": await _key(client, role)})
    assert (await problem(resp, 403))["code"] == "board_role"
    assert "Set-Cookie" not in resp.headers


async def test_a_bad_key_or_body_is_refused(make_client: AppFactory) -> None:
    client: Client = await make_client(open_without_keys=False)
    await _key(client, "admin")
    assert (await problem(await client.post("/board/session", json={"api_key": "nba_x_y"}), 401))["code"] == (
        "invalid_key"
    )
    missing = await problem(await client.post("/board/session", json={}), 400)
    assert missing["errors"][0]["field"] == "api_key"


async def test_a_session_ends_with_its_key_and_its_time(make_client: AppFactory) -> None:
    clock = Clock()
    client: Client = await make_client(open_without_keys=False, clock=clock)
    key = await _key(client, "analyst")
    await _sign_in(client, key)
    assert (await client.get("/v1/board/learning")).status == 200
    clock.now = NOW + session.SESSION_SECONDS
    assert (await problem(await client.get("/v1/board/learning"), 401))["code"] == "signed_out"
    clock.now = NOW
    assert (await client.get("/v1/board/learning")).status == 200
    app = client.app
    assert app is not None
    await app[ACCESS].revoke_key(key.split("_")[1], OPEN)
    assert (await problem(await client.get("/v1/board/learning"), 401))["code"] == "signed_out"


async def test_a_tampered_cookie_is_refused(make_client: AppFactory) -> None:
    client: Client = await make_client(open_without_keys=False)
    await _sign_in(client, await _key(client, "analyst"))
    cookie = next(c for c in client.session.cookie_jar if c.key == session.COOKIE)
    version, key_id, until, mac = cookie.value.split(".")
    client.session.cookie_jar.clear()
    genuine = {"Cookie": f"{session.COOKIE}={cookie.value}"}
    assert (await client.get("/v1/board/learning", headers=genuine)).status == 200
    for forged in (f"{version}.{key_id}.{int(until) * 2}.{mac}", f"{version}.000000000000.{until}.{mac}", "x"):
        resp = await client.get("/v1/board/learning", headers={"Cookie": f"{session.COOKIE}={forged}"})
        assert (await problem(resp, 401))["code"] == "signed_out"


async def test_an_open_server_needs_no_sign_in(client: Client) -> None:
    me = await (await client.get("/board/session")).json()
    assert me["open"] is True
    assert me["role"] == "admin"


def test_a_token_expires_with_its_key_if_that_is_sooner() -> None:
    secret = b"k" * 32
    token, until = session.issue(secret, "abc", 1_000, key_expires_ms=5_000)
    assert until == 5_000
    assert session.verify(secret, token, 4_999) == "abc"
    with pytest.raises(Exception, match="expired"):
        session.verify(secret, token, 5_000)
    with pytest.raises(Exception, match="not valid"):
        session.verify(b"j" * 32, token, 1_000)
    assert session.csrf_token(secret, token) != session.csrf_token(secret, token + "x")
