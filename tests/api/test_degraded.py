"""When Redis is slow or gone, decide still answers (degraded, rules only); writes say 503."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from nba.http.routes import DECIDER
from nba.runtime.embedded_redis import RedisServer
from tests.api.helpers import CROSSSELL_MOBILE, decide, problem, put_customer
from tests.conftest import AppFactory


class SlowProxy:
    """A TCP proxy in front of the real Redis that can be told to hold every reply: a slow Redis."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.delay = 0.0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/0"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, slow: bool) -> None:
            while data := await src.read(65536):
                if slow and self.delay:
                    await asyncio.sleep(self.delay)
                dst.write(data)
                await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True), return_exceptions=True)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.mark.single_redis  # a proxy in front of one server
async def test_a_missed_deadline_gives_a_degraded_rules_only_answer(make_client: AppFactory, redis_url: str) -> None:
    proxy = SlowProxy(int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    # a generous deadline while the proxy is fast (the first decision also loads the scripts, and CI
    # machines pause), then a tight one while it holds every reply for 10 s
    client = await make_client(deadline=5.0, url=await proxy.start())
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    assert (await decide(client, "c-1"))["degraded"] is False
    client.app[DECIDER].deadline = 0.1
    proxy.delay = 10.0
    start = time.perf_counter()
    body = await decide(client, "c-1", "web")
    waited = time.perf_counter() - start
    proxy.delay = 0.0
    await proxy.close()
    assert body["degraded"] is True
    # did not wait for the 10 s reply (generous: a machine that pauses at the deadline earns the decision
    # a fresh deadline up to Deadline.GRACES times, see nba.concurrency)
    assert waited < 5.0, waited
    # an unknown, anonymous customer: nothing that needs consent or a segment, nothing mandatory
    assert {a["action_id"] for a in body["actions"]} <= {"email-capture", "crosssell-consent-request"}
    text = await (await client.get("/metrics")).text()
    assert 'nba_decisions_total{channel="web",outcome="degraded"} 1.0' in text
    # a Redis too slow for the deadline never raised; it is counted as a failed call all the same
    assert 'nba_redis_errors_total{op="read_customer"} 1.0' in text


@pytest.mark.single_redis  # a server of its own, stopped (tests/test_failover.py: a primary)
async def test_redis_gone_decide_degrades_and_writes_are_503(
    make_client: AppFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(tmp_path / "redis", persist=False)
    url = server.start()
    try:
        client = await make_client(url=url, deadline=5.0)  # generous: the degraded answer below does not wait
        await put_customer(client, "c-1", CROSSSELL_MOBILE)
        assert (await decide(client, "c-1"))["degraded"] is False
        server.stop()
        with caplog.at_level(logging.WARNING, logger="nba.decision.decider"):
            body = await decide(client, "c-1")
            assert (await decide(client, "c-2"))["degraded"] is True
        assert body["degraded"] is True
        # one warning for both: a Redis outage must not write a log line per decision
        assert len([r for r in caplog.records if "degraded decision" in r.getMessage()]) == 1
        resp = await client.post(
            "/v1/events",
            json={
                "events": [
                    {
                        "event_id": "e",
                        "type": "impression",
                        "customer_id": "c-1",
                        "action_id": "tv-addon",
                        "channel": "web",
                    }
                ]
            },
        )
        assert (await problem(resp, 503))["code"] == "storage_unavailable"
        assert resp.headers["Retry-After"] == "1"  # every 503 says when to retry
        ready = await client.get("/readyz")
        assert (await problem(ready, 503))["code"] == "unavailable"
        assert ready.headers["Retry-After"] == "1"
        assert (await client.get("/healthz")).status == 200  # an external Redis away: not a reason to restart
        text = await (await client.get("/metrics")).text()
        assert 'nba_redis_errors_total{op="apply_events"} 1.0' in text  # operators see the failures
    finally:
        server.stop()  # idempotent; never leave a redis-server behind a failed assertion
