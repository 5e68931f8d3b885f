"""The steering board in a real browser: Debian's headless Chromium, driven by Playwright over the
DevTools protocol (its console and page errors are collected: a page that logs an error fails), against
two real `nba serve` processes sharing one Redis.

What the issue asks of the board: every page loads clean; the Performance page shows the API's numbers
for the same period after real decide and events traffic; a rollback from the board changes the rules
version on every process; the explorer's answer is decide's dry run for the same input; a marketer key
signs in and a channel key is refused; a change without the session's CSRF token is refused."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

from nba.runtime.embedded_redis import RedisServer
from tests.conftest import RULES
from tests.serving import Serve, nba

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's headless Chromium (`chromium` on PATH)"),
]

PATIENCE_MS = 60_000  # for anything the page waits for: a cold Chromium on a busy machine is slow
CONVERGE = 60.0  # seconds for the learner, or a rule change, to reach every process (about 1 s here)
PAGES = ("performance", "learning", "rules", "explorer", "outbound")
CUSTOMERS = [f"c-{1000 + i}" for i in range(30)]  # the demo customers of --demo-customers 50


@dataclass(frozen=True)
class Site:
    a: Serve
    b: Serve
    rules: Path  # the rules directory both serve (a copy: the rollback test edits it)
    marketer: str
    admin: str
    channel: str  # a web channel key: the board refuses it


def _key(env: dict[str, str], role: str, *options: str) -> str:
    made = nba("keys", "create", "--name", f"board {role}", "--role", role, "--rate", "0", *options, env=env)
    assert made.returncode == 0, made.stderr
    return made.stdout.split()[0]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("board")
    rules = tmp / "rules"
    shutil.copytree(RULES, rules)
    redis = RedisServer(tmp / "redis", persist=False)
    env = {
        "NBA_REDIS_URL": redis.start(),
        "NBA_RULES_DIR": str(rules),
        "NBA_DECIDE_DEADLINE_MS": "10000",
        # the tests make their own traffic: a simulated past learned in the background meanwhile would
        # move the numbers between the page's read and the API's
        "NBA_DEMO_DAYS": "0",
    }
    servers: list[Serve] = []
    try:
        # keys first: a server with keys never answers as an open one
        keys = (_key(env, "marketer"), _key(env, "admin"), _key(env, "channel", "--channel", "web"))
        servers.append(Serve(tmp / "a", "--demo-customers", "50", env=env, name="a"))
        servers.append(Serve(tmp / "b", env=env, name="b"))
        for server in servers:
            server.wait_ready()
        yield Site(servers[0], servers[1], rules, *keys)
    finally:
        for server in servers:
            server.kill_all()
        redis.stop()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One Chromium for the module (each test has its own context: its own cookies)."""
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        await chromium.close()


# ------------------------------------------------------------------------------------------ helpers


async def call(
    method: str, url: str, body: Any = None, key: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """One request as a program sends it (a Bearer key, or none)."""
    sent = dict(headers or {}) | ({"Authorization": f"Bearer {key}"} if key else {})
    async with aiohttp.ClientSession() as http, http.request(method, url, json=body, headers=sent) as resp:
        return resp.status, await resp.json(content_type=None) if resp.status != 204 else None


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `check` until it holds (generous: this checks that it happens, not how fast)."""
    deadline = time.monotonic() + CONVERGE
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"{what} did not happen within {CONVERGE:.0f} s")


@dataclass
class Tab:
    page: Page
    base: str
    problems: list[str] = field(default_factory=list)  # console errors and uncaught exceptions

    def unexpected(self) -> list[str]:
        # what a browser logs by itself for a refused answer: the session check of a signed-out visitor
        # (401), and a sign-in refused (401, 403)
        refused = ("status of 401", "status of 403")
        return [p for p in self.problems if not ("/board/session" in p and any(r in p for r in refused))]


@contextlib.asynccontextmanager
async def tab(browser: Browser, server: Serve) -> AsyncIterator[Tab]:
    context = await browser.new_context(locale="en-US", timezone_id="UTC", viewport={"width": 1366, "height": 900})
    context.set_default_timeout(PATIENCE_MS)
    page = await context.new_page()
    found = Tab(page, server.base)

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            found.problems.append(f"console: {message.text} ({message.location.get('url')})")

    page.on("console", console)
    page.on("pageerror", lambda exc: found.problems.append(f"page error: {exc}"))
    try:
        yield found
    finally:
        await context.close()


async def sign_in(t: Tab, key: str) -> None:
    await t.page.goto(f"{t.base}/board")
    await t.page.locator("#page-signin").wait_for(state="visible")
    await t.page.fill("#api-key", key)
    await t.page.press("#api-key", "Enter")  # the keyboard is enough


async def show(t: Tab, name: str) -> None:
    """Open a tab from the navigation and wait until its data is on the page."""
    await t.page.click(f"#tabs a[data-page={name}]")
    await t.page.locator(f"#page-{name}[data-state=loaded], #page-{name}[data-state=failed]").wait_for()
    state = await t.page.get_attribute(f"#page-{name}", "data-state")
    assert state == "loaded", (name, await t.page.inner_text("#messages"), t.problems)


async def messages(t: Tab) -> str:
    return await t.page.inner_text("#messages")


# -------------------------------------------------------------------------------------------- tests


async def test_a_marketer_key_signs_in_and_a_channel_key_is_refused(browser: Browser, site: Site) -> None:
    async with tab(browser, site.a) as t:
        await sign_in(t, site.channel)
        await t.page.locator("#messages .message[data-status='403']").wait_for()
        assert await t.page.locator("#page-signin").is_visible()
        assert await t.page.locator("#tabs").is_hidden()

        await t.page.fill("#api-key", "nba_" + "0" * 12 + "_not-a-key")
        await t.page.click("#signin-form button")
        await t.page.locator("#messages .message[data-status='401']").wait_for()

        await t.page.fill("#api-key", site.marketer)
        await t.page.click("#signin-form button")
        await t.page.locator("#who").wait_for(state="visible")
        assert await t.page.inner_text("#who-role") == "marketer"
        visible = [await a.get_attribute("data-page") for a in await t.page.locator("#tabs a:visible").all()]
        assert visible == list(PAGES)
        await t.page.locator("#page-performance[data-state]").wait_for()
        assert await t.page.input_value("#api-key") == ""  # the key is not left on the page

        await t.page.click("#sign-out")
        await t.page.locator("#page-signin").wait_for(state="visible")
        status = (await t.page.context.request.get(f"{site.a.base}/board/session")).status
        assert status == 401  # the cookie is gone
        assert t.unexpected() == []


async def test_every_page_loads_without_console_or_page_errors(browser: Browser, site: Site) -> None:
    status, run = await call("POST", site.a.url("/v1/outbound/runs"), {"channel": "email", "dry_run": True}, site.admin)
    assert status == 202, run
    async with tab(browser, site.a) as t:
        await sign_in(t, site.marketer)
        for name in PAGES:
            await show(t, name)
            assert await messages(t) == "", name
        # what each page does beyond loading
        await show(t, "learning")
        await t.page.locator("#page-learning[data-refreshed='2']").wait_for()  # it refreshes by itself
        await show(t, "rules")
        await t.page.click("#diff-form button")
        await t.page.locator("#diff p").wait_for()
        await show(t, "explorer")
        await t.page.fill("#ex-customer", "c-1001")
        await t.page.click("#explorer-form button")
        await t.page.locator("#ex-explain tbody tr").first.wait_for()
        await show(t, "outbound")
        await t.page.click(f"#outbound-runs button:text('{run['run_id']}')")
        await t.page.locator(f"#outbound-report[data-run='{run['run_id']}'] h3").wait_for()
        assert await messages(t) == ""
        assert t.unexpected() == []


async def _traffic(site: Site) -> tuple[int, int]:
    """Real decisions on web and events for them: an impression of every action shown, an accept of the
    first for every other customer. The impressions and accepts sent."""
    shown = accepted = 0
    for i, customer in enumerate(CUSTOMERS):
        status, decision = await call(
            "POST", site.a.url("/v1/decide"), {"customer_id": customer, "channel": "web"}, site.admin
        )
        assert status == 200, decision
        base = {"customer_id": customer, "decision_id": decision["decision_id"], "channel": "web"}
        events = [
            {**base, "event_id": f"imp-{customer}-{a['action_id']}", "type": "impression", "action_id": a["action_id"]}
            for a in decision["actions"]
        ]
        if decision["actions"] and i % 2 == 0:
            first = decision["actions"][0]["action_id"]
            events.append({**base, "event_id": f"acc-{customer}", "type": "accept", "action_id": first})
            accepted += 1
        shown += len(decision["actions"])
        if events:
            status, result = await call("POST", site.a.url("/v1/events"), {"events": events}, site.admin)
            assert status == 202, result
    assert shown > 0, "no decision proposed anything"
    assert accepted > 0
    return shown, accepted


def _cells(row: dict[str, Any]) -> dict[str, Any]:
    """What a table row of the Performance page shows, from the API's row: field -> (value, low, high)."""
    return {
        "shown": [row["shown"], None, None],
        "accepted": [row["accepted"], None, None],
        "rejected": [row["rejected"], None, None],
        "value": [row["value"], None, None],
        "rate": [row["rate"], row["rate_low"], row["rate_high"]],
        "model": [row["model"]["rate"], row["model"]["rate_low"], row["model"]["rate_high"]],
        "control": [row["control"]["rate"], row["control"]["rate_low"], row["control"]["rate_high"]],
        "lift": [row["lift"], row["lift_low"], row["lift_high"]],
    }


async def _shown_cells(page: Page, row_selector: str) -> dict[str, Any]:
    cells = await page.locator(f"{row_selector} td[data-field]").evaluate_all(
        """cells => cells.filter(c => c.dataset.field !== "trend").map(c => [c.dataset.field,
             [JSON.parse(c.dataset.value), c.dataset.low === undefined ? null : JSON.parse(c.dataset.low),
              c.dataset.high === undefined ? null : JSON.parse(c.dataset.high)], c.innerText])"""
    )
    return {field: (values, text) for field, values, text in cells}


async def test_the_performance_page_shows_the_api_s_numbers(browser: Browser, site: Site) -> None:
    shown, accepted = await _traffic(site)

    async def learned() -> bool:
        status, body = await call("GET", site.b.url("/v1/board/performance?bucket=hour"), key=site.marketer)
        assert status == 200, body
        totals = body["totals"]
        return bool(totals["shown"] >= shown and totals["accepted"] >= accepted)

    await until(learned, "the learner counting the traffic")
    async with tab(browser, site.b) as t:
        await sign_in(t, site.marketer)
        await show(t, "performance")
        async with t.page.expect_response("**/v1/board/performance?*") as answered:
            await t.page.select_option("#perf-period", "24")
        assert (await answered.value).ok
        await t.page.locator("#page-performance[data-state=loaded]").wait_for()
        table = t.page.locator("#perf-table")
        query = {name: await table.get_attribute(f"data-{name}") for name in ("from", "until", "bucket")}
        status, api = await call(
            "GET",
            site.b.url("/v1/board/performance?" + "&".join(f"{k}={v}" for k, v in query.items())),
            key=site.marketer,
        )
        assert status == 200, api
        assert api["totals"]["shown"] >= shown  # the traffic is inside the period the page chose
        rows = await t.page.locator("#perf-table tbody tr[data-action]").evaluate_all(
            "rows => rows.map(r => [r.dataset.action, r.dataset.channel])"
        )
        assert rows == [[r["action_id"], r["channel"]] for r in api["rows"]]
        for r in api["rows"]:
            seen = await _shown_cells(
                t.page, f"#perf-table tbody tr[data-action='{r['action_id']}'][data-channel='{r['channel']}']"
            )
            assert {f: v for f, (v, _) in seen.items()} == _cells(r), r["action_id"]
            for count in ("shown", "accepted", "rejected"):
                assert seen[count][1] == f"{r[count]:,}"  # thousands separators, no decimals
            if r["rate"] is not None:  # one decimal; the browser rounds a half up, Python's format to even
                shown_rate = float(seen["rate"][1].split("%", 1)[0])
                assert abs(shown_rate - 100 * r["rate"]) <= 0.05 + 1e-9, (seen["rate"][1], r["rate"])
        totals = await _shown_cells(t.page, "#perf-table tfoot tr")
        assert {f: v for f, (v, _) in totals.items()} == _cells(api["totals"])
        assert totals["shown"][1] == f"{api['totals']['shown']:,}"
        # a dashed line for each rule change in the period
        marked = await t.page.locator("#perf-chart g.rules-change").evaluate_all("gs => gs.map(g => g.dataset.at)")
        start, end = (datetime.fromisoformat(api[k]) for k in ("from", "until"))
        assert marked == [c["at"] for c in api["rules_changes"] if start <= datetime.fromisoformat(c["at"]) <= end]
        assert await messages(t) == ""
        assert t.unexpected() == []


async def test_the_explorer_answers_as_decide_does_with_dry_run(browser: Browser, site: Site) -> None:
    async with tab(browser, site.a) as t:
        await sign_in(t, site.marketer)
        await show(t, "explorer")
        await t.page.fill("#ex-customer", "c-1003")
        await t.page.select_option("#ex-channel", "web")
        await t.page.fill("#ex-context", '{"reason": "billing"}')
        await t.page.fill("#ex-limit", "3")
        async with t.page.expect_response("**/v1/decide") as answered:
            await t.page.click("#explorer-form button")
        response = await answered.value
        sent = response.request.post_data_json
        assert sent == {
            "customer_id": "c-1003",
            "channel": "web",
            "context": {"reason": "billing"},
            "limit": 3,
            "explain": True,
            "dry_run": True,
        }
        shown = await response.json()
        await t.page.locator(f"#ex-result[data-decision-id='{shown['decision_id']}']").wait_for()
        # the page shows the answer it got: the ranked actions, and every action's sentence
        ranked = await t.page.locator("#ex-ranked tbody tr[data-action]").evaluate_all(
            "rows => rows.map(r => r.dataset.action)"
        )
        assert ranked == [a["action_id"] for a in shown["actions"]]
        explained = await t.page.locator("#ex-explain tbody tr").evaluate_all(
            "rows => rows.map(r => [r.dataset.action, r.dataset.stage, r.dataset.proposed,"
            " r.querySelector('.why').innerText])"
        )
        assert explained == [
            [e["action_id"], e["stage"], str(e["stage"] == "ranked").lower(), e["why"]] for e in shown["explain"]
        ]
        # ... and it is decide's: the same request sent as a program sends it
        status, direct = await call("POST", site.a.url("/v1/decide"), sent, site.marketer)
        assert status == 200, direct
        for name in ("customer_id", "channel", "segments", "rules_version", "dry_run"):
            assert shown[name] == direct[name], name
        assert shown["dry_run"] is True
        # what the rules decide is the same; the order among the eligible is Thompson sampling's draw
        scored = {"ranked", "arbitration"}
        assert [e["action_id"] for e in shown["explain"]] == [e["action_id"] for e in direct["explain"]]
        for mine, theirs in zip(shown["explain"], direct["explain"], strict=True):
            assert mine["eligible"] == theirs["eligible"], mine["action_id"]
            if mine["stage"] in scored or theirs["stage"] in scored:
                assert {mine["stage"], theirs["stage"]} <= scored, (mine, theirs)
            else:
                assert mine == theirs
        for answer in (shown, direct):  # and each answer proposes what its explanation says it ranked
            ranked_items = sorted((e for e in answer["explain"] if e["stage"] == "ranked"), key=lambda e: e["rank"])
            assert [a["action_id"] for a in answer["actions"]] == [e["action_id"] for e in ranked_items]
        assert t.unexpected() == []


async def test_a_change_without_the_session_s_csrf_token_is_refused(site: Site) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # the server is on an IP address
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.post(site.a.url("/board/session"), json={"api_key": site.marketer}) as resp:
            assert resp.status == 200, await resp.text()
            session = await resp.json()
            cookie = resp.headers["Set-Cookie"]
        assert "HttpOnly" in cookie, cookie
        assert "SameSite=Strict" in cookie, cookie
        assert session["role"] == "marketer"
        assert session["csrf"]
        async with http.get(site.a.url("/v1/rules")) as resp:
            assert resp.status == 200  # the cookie admits reads
        preview = {"customer_id": "c-1001", "channel": "web", "explain": True, "dry_run": True}
        changes = [
            ("POST", "/v1/rules/rollback", None),
            ("POST", "/v1/decide", preview),
            ("DELETE", "/board/session", None),
        ]
        # a page on another site posting with the cookie: refused for its origin, even with the token
        tokens: list[dict[str, str]] = [{}, {"X-CSRF-Token": "not-the-token"}, {"X-CSRF-Token": session["csrf"]}]
        for (method, path, body), token in itertools.product(changes, tokens):
            if path == "/board/session" and token == tokens[2]:
                continue  # signing out is no harm: the server lets the session's own token do it from anywhere
            cross_site = {"Origin": "http://attacker.example"} | token
            async with http.request(method, site.a.url(path), json=body, headers=cross_site) as resp:
                refusal = await resp.json(content_type=None)
                assert resp.status == 403, (method, path, refusal)
                assert refusal["code"] in ({"origin_forbidden"} if token == tokens[2] else {"csrf", "origin_forbidden"})
        # ... and without an Origin (an old browser, a form): refused without the session's token
        for (method, path, body), token in itertools.product(changes, tokens[:2]):
            async with http.request(method, site.a.url(path), json=body, headers=token) as resp:
                refusal = await resp.json(content_type=None)
                assert resp.status == 403, (method, path, refusal)
                assert refusal["code"] == "csrf", refusal
        async with http.post(site.a.url("/v1/decide"), json=preview, headers={"X-CSRF-Token": session["csrf"]}) as resp:
            assert resp.status == 200, await resp.text()


async def test_a_rollback_from_the_board_changes_the_rules_on_every_process(browser: Browser, site: Site) -> None:
    async def versions() -> list[str]:
        found = []
        for server in (site.a, site.b):
            status, body = await call("GET", server.url("/v1/rules"), key=site.marketer)
            assert status == 200, body
            found.append(body["version"])
        return found

    first = (await versions())[0]
    edited = site.rules / "actions" / "tv-addon.yaml"
    edited.write_text(edited.read_text().replace("value: 15", "value: 16"))
    status, reloaded = await call("POST", site.a.url("/v1/rules/reload"), key=site.marketer)
    assert status == 200, reloaded
    assert reloaded["changed"], reloaded
    second = reloaded["version"]

    async def on_every_process(version: str) -> bool:
        return await versions() == [version, version]

    await until(lambda: on_every_process(second), f"rules {second} on both processes")
    async with tab(browser, site.b) as t:  # the other process than the one that published
        await sign_in(t, site.marketer)
        await show(t, "rules")
        assert await t.page.inner_text("#rules-current") == second
        # the diff between the two (the page offers the previous and the current version)
        assert await t.page.input_value("#diff-from") == first
        assert await t.page.input_value("#diff-to") == second
        await t.page.click("#diff-form button")
        diff = t.page.locator("#diff .diff-file[data-path='actions/tv-addon.yaml']")
        await diff.wait_for()
        assert await diff.locator(".add").all_inner_texts() == ["+value: 16"]
        assert await diff.locator(".del").all_inner_texts() == ["-value: 15"]

        await t.page.click("#rollback")
        dialog = t.page.locator("#rollback-dialog")
        await dialog.wait_for(state="visible")
        async with t.page.expect_request("**/v1/rules/rollback") as posted:
            await t.page.click("#rollback-confirm")
        assert (await posted.value).headers.get("x-csrf-token")
        await t.page.locator("#messages .message.info").wait_for()
        await until(lambda: on_every_process(first), f"the rollback to {first} on both processes")
        await t.page.locator("#page-rules[data-state=loaded]").wait_for()
        # the page reads the versions again after the rollback
        await t.page.wait_for_function(f"document.getElementById('rules-current').textContent === '{first}'")
        assert await t.page.inner_text("#rules-current") == first
        assert t.unexpected() == []
