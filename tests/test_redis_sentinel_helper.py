"""tests/redis_sentinel.py: a real local Redis Sentinel deployment starts, replicates, fails over and takes
the old primary back as a replica; with a password as well.

Every test leaves all nodes running and the deployment settled, so that they run in any order.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

from tests.redis_sentinel import LocalSentinel, Node, connect, execute

PASSWORD = 'se cret/@:"q"\\x'  # a config file value to quote, a URL part to escape


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSentinel]:
    with LocalSentinel(tmp_path_factory.mktemp("sentinel")) as local:
        local.start()
        print(f"\nthe sentinel deployment started in {local.start_seconds:.1f} s")
        yield local


@asynccontextmanager
async def sentinel_client(deployment: LocalSentinel, **kwargs: object) -> AsyncIterator[tuple[Sentinel, Redis]]:
    """redis-py's Sentinel over the deployment's sentinels, and a client of the primary they name."""
    sentinels = Sentinel(deployment.sentinel_addresses(), socket_timeout=5.0, **kwargs)  # type: ignore[no-untyped-call]
    primary = sentinels.master_for(deployment.service, decode_responses=True, socket_timeout=5.0)
    try:
        yield sentinels, primary
    finally:
        await primary.aclose()
        await sentinels.aclose()


def assert_replicates(deployment: LocalSentinel, replica: Node, primary: Node) -> None:
    role = deployment.role(replica)
    assert role["role"] == "slave"
    assert role["master_port"] == primary.port
    assert role["master_link_status"] == "up"


def test_it_starts_and_the_sentinels_name_the_primary_which_has_a_linked_replica(deployment: LocalSentinel) -> None:
    assert len(deployment.data_nodes) == 2
    assert len(deployment.sentinel_nodes) == 3
    assert all(node.alive() for node in deployment.nodes)
    primary = deployment.primary()
    assert primary is deployment.data_nodes[0]
    assert deployment.url == f"redis://127.0.0.1:{primary.port}"
    ports = [node.port for node in deployment.sentinel_nodes]
    assert deployment.sentinel_addresses() == [("127.0.0.1", port) for port in ports]
    assert deployment.sentinel_url == "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in ports) + "/nba"
    assert len({node.port for node in deployment.nodes}) == 5
    for sentinel in deployment.sentinel_nodes:
        with connect(sentinel) as client:
            assert execute(client, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "nba") == ["127.0.0.1", str(primary.port)]
        assert [int(entry["port"]) for entry in deployment.sentinel_view(sentinel, "REPLICAS")] == [
            deployment.data_nodes[1].port
        ]
        assert len(deployment.sentinel_view(sentinel, "SENTINELS")) == 2
    assert deployment.role(primary)["role"] == "master"
    assert deployment.replicas_of_primary() == [deployment.data_nodes[1]]
    assert_replicates(deployment, deployment.data_nodes[1], primary)


def test_a_write_on_the_primary_is_readable_on_the_replica_after_wait(deployment: LocalSentinel) -> None:
    deployment.flushall()
    primary = deployment.primary()
    (replica,) = deployment.replicas_of_primary()
    with connect(primary) as client:
        client.hset("customer:1", mapping={"a": "x" * 3000, "s": "vip"})
        assert execute(client, "WAIT", 1, 10000) == 1
    with connect(replica) as client:
        assert client.hgetall("customer:1") == {"a": "x" * 3000, "s": "vip"}
        with pytest.raises(redis.ReadOnlyError):
            client.set("k", "v")
    deployment.flushall()
    with connect(replica) as client:
        assert client.dbsize() == 0


async def test_a_killed_primary_fails_over_to_its_replica_and_comes_back_as_its_replica(
    deployment: LocalSentinel,
) -> None:
    deployment.flushall()
    old = deployment.primary()
    (replica,) = deployment.replicas_of_primary()
    with connect(old) as client:
        client.set("before", "failover")
        assert execute(client, "WAIT", 1, 10000) == 1

    deployment.kill(old)
    assert not old.alive()
    seconds = deployment.wait_for_failover(old)
    print(f"\nfailover in {seconds:.1f} s")
    assert deployment.primary() is replica
    assert deployment.url == f"redis://127.0.0.1:{replica.port}"
    assert deployment.role(replica)["role"] == "master"
    async with sentinel_client(deployment) as (sentinels, primary):
        assert await sentinels.discover_master("nba") == ("127.0.0.1", replica.port)
        assert await primary.get("before") == "failover"
        await primary.set("after", "failover")

    began = time.monotonic()
    deployment.restart(old)
    print(f"the old primary came back as a replica in {time.monotonic() - began:.1f} s")
    assert old.alive()
    assert deployment.primary() is replica
    assert deployment.replicas_of_primary() == [old]
    assert_replicates(deployment, old, replica)
    with connect(old) as client:
        assert client.mget("before", "after") == ["failover", "failover"]
    deployment.flushall()


async def test_with_a_password_the_data_nodes_require_it_and_the_sentinels_fail_over_with_it(tmp_path: Path) -> None:
    with LocalSentinel(tmp_path / "sentinel", service="secured", password=PASSWORD) as deployment:
        deployment.start()
        print(f"\nthe deployment with a password started in {deployment.start_seconds:.1f} s")
        old = deployment.primary()
        assert deployment.url == f"redis://:se%20cret%2F%40%3A%22q%22%5Cx@127.0.0.1:{old.port}"
        hosts = ",".join(f"127.0.0.1:{port}" for _host, port in deployment.sentinel_addresses())
        assert deployment.sentinel_url == f"redis+sentinel://:se%20cret%2F%40%3A%22q%22%5Cx@{hosts}/secured"
        with (
            redis.Redis(host=old.host, port=old.port, socket_timeout=5.0) as without,
            pytest.raises(redis.AuthenticationError),
        ):
            without.ping()
        with redis.Redis.from_url(deployment.url, socket_timeout=5.0) as client:
            client.set("k", "v")
            assert execute(client, "WAIT", 1, 10000) == 1
        for sentinel in deployment.sentinel_nodes:  # the sentinels take no password
            with connect(sentinel) as client:
                assert client.ping()

        deployment.kill(old)
        print(f"failover with a password in {deployment.wait_for_failover(old):.1f} s")
        (new,) = [node for node in deployment.data_nodes if node is not old]
        assert deployment.primary() is new
        async with sentinel_client(deployment, password=PASSWORD) as (_sentinels, primary):
            assert await primary.get("k") == "v"
            await primary.set("k", "w")
    assert not any(node.alive() for node in deployment.nodes)
