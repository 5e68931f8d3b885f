"""The real `nba serve` for closed-loop learning simulations (simulate.py, hard_world.py): its own
redis-server, generated rules, an HTTP session, and the profiles of the simulated customers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from nba.concurrency import run_bounded
from nba.runtime.embedded_redis import RedisServer, free_port


@dataclass(frozen=True)
class Server:
    base: str
    http: aiohttp.ClientSession
    process: subprocess.Popen[bytes]


@contextlib.asynccontextmanager
async def learning_server(workdir: Path, name: str, rules: Path, connections: int) -> AsyncIterator[Server]:
    redis = RedisServer(workdir / name.replace(" ", "-"), persist=False)
    url = redis.start()
    port = free_port()
    env = {
        **os.environ,
        "NBA_REDIS_URL": url,
        "NBA_RULES_DIR": str(rules),
        "NBA_PORT": str(port),
        "NBA_HOST": "127.0.0.1",
        "NBA_LOG_LEVEL": "WARNING",
        # this measures learning, not latency: on a 2-core VM shared with the generator, a 250 ms
        # deadline turns scheduling hiccups into degraded (rules-only, unlearnable) answers
        "NBA_DECIDE_DEADLINE_MS": "5000",
        "NBA_REDIS_TIMEOUT_MS": "5000",
    }
    process = _start(env)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as http:
            for _ in range(600):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{base}/readyz") as r:
                        if r.status == 200:
                            break
                await asyncio.sleep(0.1)
            yield Server(base, http, process)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:  # seen once after a long run: the results matter more
            print(f"  {name}: server did not stop within 30 s of SIGTERM; killed", flush=True)
            process.kill()
            process.wait()
        redis.stop()


def _start(env: dict[str, str]) -> subprocess.Popen[bytes]:
    # started once per run before any request: nothing on the event loop waits for it
    return subprocess.Popen([sys.executable, "-m", "nba.cli", "serve"], env=env)


async def put_profiles(server: Server, profiles: Mapping[str, Mapping[str, Any]]) -> None:
    async def put(cid: str, attributes: Mapping[str, Any]) -> None:
        async with server.http.put(f"{server.base}/v1/customers/{cid}", json={"attributes": attributes}) as r:
            assert r.status in (200, 201), await r.text()

    await run_bounded((put(cid, attrs) for cid, attrs in profiles.items()), 32)
