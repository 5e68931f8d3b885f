"""Test session: one real redis-server on a free loopback port; factories for apps and rulebooks."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, settings
from redis.asyncio import Redis, RedisCluster

from nba.app import AppOptions, create_app, redis_client
from nba.http.routes import LEARNER, LIVE
from nba.learning.learner import Learner
from nba.live import Live
from nba.rules.load import load_rulebook
from nba.rules.rulebook import Rulebook
from nba.runtime.embedded_redis import RedisServer
from tests.redis_cluster import LocalCluster
from tests.redis_sentinel import LocalSentinel

# Generated tests are seeded (the same examples every run), never timed (a busy machine is not a failure)
# and keep no example database between runs.
settings.register_profile(
    "nba",
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("nba")

ROOT = Path(__file__).resolve().parent.parent
# The tests' own rule set, frozen (tests/fixtures/rules/README.md): a marketer's edit to rules/ must not
# break a test of the server. The shipped rules are checked by tests/rules/ alone.
RULES = ROOT / "tests" / "fixtures" / "rules"
SHIPPED_RULES = ROOT / "rules"
NOW = 1795435200.0  # 2026-11-23T12:00:00Z: the tests' clock


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), persist=False)
    url = server.start()
    yield url
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A real Redis Cluster of 3 primaries with a replica each, started once for the tests that ask."""
    with LocalCluster(tmp_path_factory.mktemp("cluster")) as cluster:
        cluster.start()
        yield cluster


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSentinel]:
    """A real primary with a replica, watched by 3 sentinels, started once for the tests that ask."""
    with LocalSentinel(tmp_path_factory.mktemp("sentinel")) as deployment:
        deployment.start()
        yield deployment


@pytest.fixture(scope="session")
def rulebook() -> Rulebook:
    return load_rulebook(RULES)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the tests' Redis, emptied first (every primary of a cluster)."""
    client = redis_client(redis_url, 5.0)
    if isinstance(client, Redis):
        await client.flushdb()
    else:
        await client.flushall(target_nodes=RedisCluster.PRIMARIES)
    yield cast(Redis, client)  # a RedisCluster answers the commands the tests use alike
    await client.aclose()


class Clock:
    """A settable clock: tests move time explicitly."""

    def __init__(self, now: float = NOW):
        self.now = now

    def __call__(self) -> float:
        return self.now


AppFactory = Callable[..., Any]


@pytest.fixture
async def make_client(redis_url: str, redis: Redis, rulebook: Rulebook) -> AsyncIterator[AppFactory]:
    clients: list[TestClient[web.Request, web.Application]] = []

    async def make(
        rules: Rulebook | None = None,
        *,
        seed: int = 7,
        clock: Clock | None = None,
        rules_dir: Path | None = None,
        url: str | None = None,
        deadline: float = 5.0,
        **options: Any,
    ) -> TestClient[web.Request, web.Application]:
        app = create_app(
            rules or rulebook,
            redis_client(url or redis_url, 5.0),
            AppOptions(
                rng=np.random.default_rng(seed),
                clock=clock or Clock(),
                background=False,
                rules_dir=rules_dir,
                decide_deadline=deadline,
                **options,
            ),
        )
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.close()


@pytest.fixture
async def client(make_client: AppFactory) -> TestClient[web.Request, web.Application]:
    c: TestClient[web.Request, web.Application] = await make_client()
    return c


def live(client: TestClient[web.Request, web.Application]) -> Live:
    app = client.app
    assert app is not None
    return app[LIVE]


def learner(client: TestClient[web.Request, web.Application]) -> Learner:
    app = client.app
    assert app is not None
    return app[LEARNER]


async def learn(client: TestClient[web.Request, web.Application]) -> bool:
    """Apply every event received so far, then refresh the model: what the background tasks do."""
    await learner(client).drain()
    return await live(client).refresh_model()


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped rules, for tests that break or change them."""
    target = tmp_path / "rules"
    shutil.copytree(RULES, target)
    return target
