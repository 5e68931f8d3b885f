"""The API tests run against both kinds of Redis: one server, and a real Redis Cluster (3 primaries, 3
replicas). A test about something only one server has (a proxy in front of it, its key layout) says so
with `@pytest.mark.single_redis`."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", params=["redis", "cluster"])
def redis_url(request: pytest.FixtureRequest, redis_url: str) -> str:
    if request.param == "redis":
        return redis_url
    return str(request.getfixturevalue("redis_cluster").seed_url)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if item.get_closest_marker("single_redis") and callspec and callspec.params.get("redis_url") == "cluster":
            item.add_marker(pytest.mark.skip(reason="about a single Redis"))
