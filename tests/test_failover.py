"""`nba serve` on a real Redis Cluster while it changes under traffic (a slot resharded, a primary killed
with kill -9), and on a real Sentinel-watched primary killed the same way. Channels see only answers
the API documents (decide 200, degraded while its slot has no primary; events 202, or 503 with
Retry-After), and with NBA_DURABILITY=replica every event answered 202 is afterwards in its customer's
history exactly once and counted once by the model. How fast nba
recovers is measured by loadtests/failover.py, not asserted here (a busy machine is not a failure)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from loadtests.failover import Server, Traffic, cluster_target, failover, put_profiles, sentinel_target, verify
from nba.store.keys import customer_slot
from tests.redis_cluster import LocalCluster
from tests.redis_sentinel import LocalSentinel

pytestmark = pytest.mark.slow


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    """A cluster of its own: these tests kill and move its nodes."""
    c = LocalCluster(tmp_path / "cluster")
    await asyncio.to_thread(c.start, 120.0)
    yield c
    c.stop()


@pytest.fixture
async def server(tmp_path: Path, cluster: LocalCluster) -> AsyncIterator[Server]:
    s = Server(tmp_path, cluster.seed_url, "replica")
    try:
        await s.ready()
        yield s
    finally:
        s.stop()


CUSTOMERS = [f"fo-{i}" for i in range(120)]


async def test_a_killed_primary_loses_no_acknowledged_event(cluster: LocalCluster, server: Server) -> None:
    await put_profiles(server.base, CUSTOMERS)
    traffic = Traffic(server.base, CUSTOMERS, clients=6)
    round_ = await failover(cluster_target(cluster), traffic, before=1.5, after=6.0, victim_customer=CUSTOMERS[0])
    assert traffic.seen.unexpected == [], server.log.read_text()[-3000:]
    assert round_["victims"] > 0
    assert round_["scripts_on_old_primary"] == 0  # nothing was written to it when it came back
    # nba found the promoted replica by itself: its customers were decided from Redis again afterwards
    assert round_["nba_recovered_s"] is None or round_["nba_recovered_s"] < float("inf")
    victims = {
        c
        for c in CUSTOMERS
        if cluster.primary_of_slot(customer_slot(c)) is cluster.primary_of_slot(customer_slot(CUSTOMERS[0]))
    }
    await traffic.run(1.0)  # after the failover, the victims' customers are served as before
    assert [d for d in traffic.seen.decides[-50:] if d[1] in victims and d[2]] == []
    checked = await verify(server.base, traffic.seen, CUSTOMERS)
    assert checked["accepted"] > 0
    assert checked["missing_from_histories"] == 0, checked
    assert checked["beyond_accepted_in_histories"] == 0, checked
    assert checked["counted_by_model"] == checked["accepted"], checked
    assert traffic.seen.statuses[500] == 0


@pytest.fixture
async def patient_server(tmp_path: Path, cluster: LocalCluster) -> AsyncIterator[Server]:
    """A server whose decisions wait for Redis up to 10 s: a decision then answers degraded only when a
    call failed, not when a busy machine made it slower than the usual 250 ms deadline."""
    s = Server(tmp_path, cluster.seed_url, "replica", deadline_ms=10_000)
    try:
        await s.ready()
        yield s
    finally:
        s.stop()


async def test_resharding_a_slot_under_traffic_is_invisible_to_channels(
    cluster: LocalCluster, patient_server: Server
) -> None:
    server = patient_server
    await put_profiles(server.base, CUSTOMERS)
    traffic = Traffic(server.base, CUSTOMERS, clients=6)
    running = asyncio.ensure_future(traffic.run(6.0))
    await asyncio.sleep(1.0)
    # the slot of a customer with traffic moves to another primary, keys and all (ASK, then MOVED)
    slot = customer_slot(CUSTOMERS[0])
    owner = cluster.primary_of_slot(slot)
    target = next(p for p in cluster.primaries() if p is not owner)
    await asyncio.to_thread(cluster.migrate_slot, slot, target, 5)
    await running
    assert cluster.primary_of_slot(slot) is target
    assert traffic.seen.unexpected == [], server.log.read_text()[-3000:]
    assert traffic.seen.statuses[503] == 0  # nothing was down: no answer may say so
    assert not any(degraded for _, _, degraded in traffic.seen.decides)
    checked = await verify(server.base, traffic.seen, CUSTOMERS)
    assert checked["missing_from_histories"] == 0, checked
    assert checked["beyond_accepted_in_histories"] == 0, checked
    assert checked["counted_by_model"] == checked["accepted"], checked


async def test_a_killed_sentinel_primary_loses_no_acknowledged_event(tmp_path: Path) -> None:
    deployment = LocalSentinel(tmp_path / "sentinel")
    await asyncio.to_thread(deployment.start, 120.0)
    server = Server(tmp_path, deployment.sentinel_url, "replica")
    try:
        await server.ready()
        await put_profiles(server.base, CUSTOMERS)
        traffic = Traffic(server.base, CUSTOMERS, clients=6)
        round_ = await failover(sentinel_target(deployment), traffic, before=1.5, after=6.0, victim_customer="fo-0")
        assert traffic.seen.unexpected == [], server.log.read_text()[-3000:]
        assert round_["victims"] == len(CUSTOMERS)  # one primary holds everyone
        # it came back as a primary of its own with old data for seconds: nothing was written to it
        assert round_["scripts_on_old_primary"] == 0
        await traffic.run(1.0)  # the promoted replica serves everyone
        assert not any(degraded for _, _, degraded in traffic.seen.decides[-50:])
        checked = await verify(server.base, traffic.seen, CUSTOMERS)
        assert checked["accepted"] > 0
        assert checked["missing_from_histories"] == 0, checked
        assert checked["beyond_accepted_in_histories"] == 0, checked
        assert checked["counted_by_model"] == checked["accepted"], checked
    finally:
        server.stop()
        deployment.stop()
