"""Browser access (CORS) as a real browser meets it: Debian's headless Chromium loads a page from a local
web server and calls a running `nba serve` with `fetch`; what the page could read, or the error it got,
is written into the page and read back from the DOM Chromium dumps (with the browser's own console
messages, which say why it blocked a request).

The origin a key allows is the page server's `http://127.0.0.1:<port>`; a second page server on another
port is an origin no key allows. Requests carry `Authorization` and `Content-Type: application/json`, so
the browser asks first (a preflight)."""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from nba.access import customer_token
from tests.serving import Serve, nba

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's headless Chromium (`chromium` on PATH)"),
]

BROWSER_SECONDS = 180  # wall clock for one page: a cold Chromium on a busy machine takes several seconds
# virtual time stands still while a fetch is pending, so this only bounds the page's idle time
VIRTUAL_TIME_MS = 60_000
TRIES = 20  # decisions a page asks for until one proposes an action (the do-nothing threshold may win)
RESULT = re.compile(r'<pre id="result">(.*?)</pre>', re.DOTALL)
CONSOLE = re.compile(r":CONSOLE[^\]]*\] \"(.*)\", source: ")

# One page for every case; what it does comes from its query string. It writes one JSON object into
# #result: each call's status and body, or the error fetch rejected with (name, message).
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>nba CORS</title></head>
<body><pre id="result">pending</pre>
<script>
const params = new URLSearchParams(location.search);
const api = params.get("api");
const customer = params.get("customer");
// an id for the page's own logs: it must pass the preflight, and the page must be able to read it back
const headers = {
  "Authorization": "Bearer " + params.get("key"), "Content-Type": "application/json", "X-Request-Id": "page-view-1"
};
if (params.get("token")) {
  headers["Nba-Customer-Token"] = params.get("token");  // signed by the shop's server for this page's customer
}

async function post(path, body) {
  try {
    const response = await fetch(api + path, {method: "POST", headers, body: JSON.stringify(body)});
    return {status: response.status, body: await response.json(), requestId: response.headers.get("X-Request-Id")};
  } catch (e) {
    return {error: {name: e.name, message: e.message}};
  }
}

async function run() {
  const report = {origin: location.origin, tries: 0};
  const tries = Number(params.get("tries") || "1");
  while (report.tries < tries) {
    report.tries += 1;
    report.decide = await post("/v1/decide", {customer_id: customer, channel: "web"});
    const actions = report.decide.body && report.decide.body.actions;
    if (!Array.isArray(actions) || actions.length > 0) break;
  }
  const decision = report.decide.body;
  if (params.get("event") === "1" && decision && decision.actions && decision.actions.length > 0) {
    report.event = {
      event_id: "e-1",
      type: "impression",
      customer_id: customer,
      action_id: decision.actions[0].action_id,
      decision_id: decision.decision_id,
      channel: "web",
    };
    report.events = await post("/v1/events", {events: [report.event]});
  }
  return report;
}

run()
  .catch((e) => ({script_error: String(e)}))
  .then((report) => { document.getElementById("result").textContent = JSON.stringify(report); });
</script>
</body></html>
"""


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if urlsplit(self.path).path != "/cors.html":
            self.send_error(404)
            return
        body = PAGE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def page_server() -> Iterator[str]:
    """A web server for the page on a free loopback port, in a thread; its origin."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="pages", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


@dataclass(frozen=True)
class Site:
    api: str  # the nba server
    allowed: str  # the origin `key` allows
    other: str  # an origin no key allows
    key: str  # channel key for web, allowing `allowed`
    key_without_origins: str  # channel key for web, no origins (a server-side caller's)
    tmp: Path
    signing: str  # `key`'s signing secret: what the shop's server signs customer tokens with

    def token(self, customer_id: str) -> str:
        """What the shop's server gives the page of `customer_id`."""
        return customer_token.sign(self.signing, self.key.split("_")[1], customer_id, int(time.time()) + 3600)


@dataclass(frozen=True)
class Visit:
    report: dict[str, Any]  # what the page wrote
    console: list[str]  # the browser's console messages (its CORS errors among them)


def create_key(env: dict[str, str], name: str, *options: str) -> tuple[str, str]:
    """The key, and its signing secret ('' for a key without origins)."""
    made = nba("keys", "create", "--name", name, "--role", "channel", "--channel", "web", *options, env=env)
    assert made.returncode == 0, f"nba keys create failed ({made.returncode}):\n{made.stdout}\n{made.stderr}"
    lines = made.stdout.split()
    assert lines[0].startswith("nba_"), made.stdout
    return lines[0], lines[1] if len(lines) > 1 else ""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("browser_cors")
    with page_server() as allowed, page_server() as other:
        # keys made before the first start: the data directory's Redis is started for each command
        env = {"NBA_DATA_DIR": str(tmp / "var")}
        key, signing = create_key(env, "web shop", "--origin", allowed)
        key_without_origins, _ = create_key(env, "web backend")
        server = Serve(tmp, "--demo-customers", "5")
        try:
            server.wait_ready()
            yield Site(server.base, allowed, other, key, key_without_origins, tmp, signing)
        finally:
            server.kill_all()


def visit(site: Site, name: str, origin: str, **params: str) -> Visit:
    """Chromium loads the page from `origin` with `params`; what the page reported once it was done."""
    assert CHROMIUM is not None
    url = f"{origin}/cors.html?" + urlencode({"api": site.api, **params})
    home = site.tmp / f"browser-{name}"
    home.mkdir()
    stderr = home / "chromium.log"
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-proxy-server",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={home / 'profile'}",
        f"--virtual-time-budget={VIRTUAL_TIME_MS}",
        "--dump-dom",
        url,
    ]
    env = os.environ | {"HOME": str(home)}  # nothing written to the user's home (~/.pki and the like)
    with stderr.open("wb") as err:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, env=env, start_new_session=True)
        try:
            dom, _ = proc.communicate(timeout=BROWSER_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"Chromium did not finish {url} within {BROWSER_SECONDS} s:\n{stderr.read_text()[-5000:]}")
        finally:  # Chromium and its helpers (zygote, renderer, crash handler)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log = stderr.read_text(errors="replace")
    page = dom.decode(errors="replace")
    found = RESULT.search(page)
    assert proc.returncode == 0, f"Chromium exited {proc.returncode}; DOM:\n{page}\n{log[-5000:]}"
    assert found is not None, f"no #result in the DOM:\n{page}\n{log[-5000:]}"
    text = html.unescape(found.group(1))
    assert text != "pending", f"the page did not finish within the virtual time budget; DOM:\n{page}\n{log[-5000:]}"
    report: dict[str, Any] = json.loads(text)
    assert "script_error" not in report, report
    assert report["origin"] == origin
    return Visit(report, CONSOLE.findall(log))


def cors_errors(visit: Visit) -> list[str]:
    return [m for m in visit.console if "blocked by CORS policy" in m]


def test_a_page_on_the_allowed_origin_reads_the_decision(site: Site) -> None:
    seen = visit(
        site, "allowed", site.allowed, key=site.key, customer="c-1000", tries=str(TRIES), token=site.token("c-1000")
    )
    decide = seen.report["decide"]
    assert "error" not in decide, (decide, seen.console)
    assert decide["status"] == 200, decide
    decision = decide["body"]
    assert re.fullmatch(r"[0-9a-f]{32}", decision["decision_id"]), decision
    assert decision["customer_id"] == "c-1000"
    assert decision["actions"], f"no action in {seen.report['tries']} decisions: {decision}"
    assert all(isinstance(a["action_id"], str) and a["action_id"] for a in decision["actions"])
    assert decide["requestId"] == "page-view-1"  # sent through the preflight, read back from the answer
    assert cors_errors(seen) == []


def test_a_page_on_another_origin_is_blocked_at_the_preflight(site: Site) -> None:
    seen = visit(site, "other", site.other, key=site.key, customer="c-1000", token=site.token("c-1000"))
    decide = seen.report["decide"]
    assert decide == {"error": {"name": "TypeError", "message": "Failed to fetch"}}, decide
    # the browser's reason: the preflight was refused (403 without Access-Control-Allow-Origin)
    blocked = cors_errors(seen)
    assert len(blocked) == 1, seen.console
    assert f"from origin '{site.other}'" in blocked[0]
    assert "Response to preflight request doesn't pass access control check" in blocked[0]


def test_a_page_acting_for_another_customer_is_refused_and_can_read_why(site: Site) -> None:
    # the key copied from the page, with the page's own token, naming someone else
    seen = visit(site, "other-customer", site.allowed, key=site.key, customer="c-1002", token=site.token("c-1000"))
    decide = seen.report["decide"]
    assert decide.get("status") == 403, (decide, seen.console)
    assert decide["body"]["code"] == "customer_token_invalid"
    without = visit(site, "no-token", site.allowed, key=site.key, customer="c-1002")
    assert without.report["decide"]["body"]["code"] == "customer_token_required"
    assert cors_errors(seen) == []


def test_a_key_without_origins_is_blocked_on_the_allowed_origin(site: Site) -> None:
    # refused by the server before anything is decided (origin_forbidden), and the browser hides even that
    seen = visit(site, "no-origins", site.allowed, key=site.key_without_origins, customer="c-1001")
    decide = seen.report["decide"]
    assert decide == {"error": {"name": "TypeError", "message": "Failed to fetch"}}, decide
    # the preflight passed (a key allows the origin); the answer carries no Access-Control-Allow-Origin
    blocked = cors_errors(seen)
    assert len(blocked) == 1, seen.console
    assert f"from origin '{site.allowed}'" in blocked[0]
    assert "preflight" not in blocked[0]
    assert "No 'Access-Control-Allow-Origin' header is present on the requested resource" in blocked[0]


def test_a_page_on_the_allowed_origin_sends_an_event(site: Site) -> None:
    token = site.token("c-1000")
    seen = visit(site, "event", site.allowed, key=site.key, customer="c-1000", tries=str(TRIES), event="1", token=token)
    decide = seen.report["decide"]
    assert decide.get("status") == 200, (decide, seen.console)
    assert "events" in seen.report, f"no action in {seen.report['tries']} decisions: {decide}"
    events = seen.report["events"]
    assert "error" not in events, (events, seen.console)
    assert events["status"] == 202, events
    assert events["body"]["accepted"] == 1, events
    assert events["body"]["duplicates"] == 0, events
    assert seen.report["event"]["decision_id"] == decide["body"]["decision_id"]
    assert cors_errors(seen) == []
