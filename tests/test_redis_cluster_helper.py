"""tests/redis_cluster.py: a real local Redis Cluster starts, reshards, fails over and takes a node back.

Every test leaves all nodes running and the cluster settled, so that they run in any order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import MovedError

from tests.redis_cluster import SLOTS, LocalCluster, connect, execute, parse_fields


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("cluster")) as local:
        local.start()
        print(f"\nthe cluster started in {local.start_seconds:.1f} s")
        yield local


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[RedisCluster]:
    rc = RedisCluster.from_url(cluster.seed_url, decode_responses=True)
    try:
        yield rc
    finally:
        rc.close()


def test_it_starts_with_all_slots_served_by_three_primaries_with_a_linked_replica_each(cluster: LocalCluster) -> None:
    assert len(cluster.nodes) == 6
    assert all(node.alive() for node in cluster.nodes)
    assert cluster.urls == [f"redis://127.0.0.1:{node.port}" for node in cluster.nodes]
    assert cluster.seed_url == cluster.urls[0]
    with connect(cluster.nodes[0]) as seed:
        ranges = execute(seed, "CLUSTER", "SLOTS")
    served = sorted(slot for first, last, *_nodes in ranges for slot in range(first, last + 1))
    assert served == list(range(SLOTS))
    replicas = {int(primary[1]): [int(r[1]) for r in rest] for _first, _last, primary, *rest in ranges}
    assert len(replicas) == 3
    assert all(len(ports) == 1 for ports in replicas.values())
    assert sorted([*replicas, *(p for ports in replicas.values() for p in ports)]) == sorted(
        node.port for node in cluster.nodes
    )
    assert sorted(node.port for node in cluster.primaries()) == sorted(replicas)
    for primary in cluster.primaries():
        replica = cluster.replica_of(primary)
        assert [replica.port] == replicas[primary.port]
        role = cluster.role(replica)
        assert role["role"] == "slave"
        assert role["master_port"] == primary.port
        assert role["master_link_status"] == "up"
    for node in cluster.nodes:
        with connect(node) as one:
            assert parse_fields(execute(one, "CLUSTER", "INFO"))["cluster_state"] == "ok"


def test_flushall_empties_primaries_and_replicas(cluster: LocalCluster, client: RedisCluster) -> None:
    for i in range(50):
        client.set(f"flush:{i}", "x")
    cluster.flushall()
    for node in cluster.nodes:
        with connect(node) as one:
            assert one.dbsize() == 0, node


def test_migrate_slot_moves_the_keys_of_a_slot_to_another_primary(cluster: LocalCluster, client: RedisCluster) -> None:
    keys = [f"{{moving}}:{i}" for i in range(250)]  # more than one MIGRATE batch
    slot = key_slot(keys[0].encode())
    for key in keys:
        client.set(key, f"value of {key}")
    source = cluster.primary_of_slot(slot)
    target = next(node for node in cluster.primaries() if node is not source)

    cluster.migrate_slot(slot, target)

    assert cluster.primary_of_slot(slot) is target
    with connect(target) as one:
        assert execute(one, "CLUSTER", "COUNTKEYSINSLOT", slot) == len(keys)
    with connect(source) as one:
        assert execute(one, "CLUSTER", "COUNTKEYSINSLOT", slot) == 0
    fresh = RedisCluster.from_url(cluster.seed_url, decode_responses=True)
    try:
        assert fresh.nodes_manager.slots_cache[slot][0].port == target.port
        assert fresh.mget_nonatomic(keys) == [f"value of {key}" for key in keys]
    finally:
        fresh.close()
    assert client.get(keys[-1]) == f"value of {keys[-1]}"  # the old client follows the MOVED redirection


def test_migrate_slot_while_clients_read_and_write_the_slot(cluster: LocalCluster, client: RedisCluster) -> None:
    slot = key_slot(b"{traffic}")
    for i in range(300):
        client.set(f"{{traffic}}:{i}", 0)
    source = cluster.primary_of_slot(slot)
    target = next(node for node in cluster.primaries() if node is not source)
    stop = threading.Event()
    errors: list[BaseException] = []
    writes = [0]

    def traffic() -> None:
        rc = RedisCluster.from_url(cluster.seed_url, decode_responses=True)
        try:
            while not stop.is_set():
                i = writes[0] % 400  # existing keys (served by the source until moved) and new ones (ASK)
                rc.incr(f"{{traffic}}:{i}")
                rc.get(f"{{traffic}}:{(i * 7) % 400}")
                writes[0] += 1
        except BaseException as e:
            errors.append(e)
        finally:
            rc.close()

    def more_writes(count: int) -> None:
        deadline, wanted = time.monotonic() + 30, writes[0] + count
        while writes[0] < wanted and not errors and time.monotonic() < deadline:
            time.sleep(0.01)

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        more_writes(100)
        cluster.migrate_slot(slot, target, batch=20)  # 15 batches, while the traffic goes on
        more_writes(100)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors, errors
    assert writes[0] >= 200
    assert cluster.primary_of_slot(slot) is target
    total = sum(int(client.get(f"{{traffic}}:{i}") or 0) for i in range(400))
    assert total == writes[0]  # no increment was lost or applied twice


def test_a_killed_primary_fails_over_to_its_replica_and_rejoins_as_a_replica(
    cluster: LocalCluster, client: RedisCluster
) -> None:
    victim = cluster.primary_of_slot(0)
    replica = cluster.replica_of(victim)
    survivor = next(key for key in (f"survivor:{i}" for i in range(10**6)) if key_slot(key.encode()) == 0)
    client.set(survivor, "still here")  # on the victim
    with connect(victim) as one:
        assert execute(one, "WAIT", 1, 10000) == 1  # the replica has the key

    cluster.kill(victim)
    assert not victim.alive()
    seconds = cluster.wait_for_failover(victim, timeout=15.0)
    print(f"\nfailover after {seconds:.1f} s")
    assert seconds < 15.0
    cluster.wait_for_state_ok(timeout=60.0)

    assert cluster.primary_of_slot(0) is replica
    assert cluster.role(replica)["role"] == "master"
    assert victim not in cluster.primaries()
    fresh = RedisCluster.from_url(cluster.live_nodes()[0].url, decode_responses=True)  # not the victim
    try:
        assert fresh.get(survivor) == "still here"
    finally:
        fresh.close()

    cluster.restart(victim)

    assert victim.alive()
    assert cluster.replica_of(replica) is victim
    role = cluster.role(victim)
    assert role["role"] == "slave"
    assert role["master_port"] == replica.port
    assert role["master_link_status"] == "up"
    with connect(victim) as one:
        execute(one, "READONLY")
        assert one.get(survivor) == "still here"
    cluster.wait_for_state_ok(timeout=60.0)


def test_a_cluster_has_three_primaries_at_least_and_stops_before_it_started(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="3 primaries"):
        LocalCluster(tmp_path, primaries=2)
    local = LocalCluster(tmp_path)
    local.stop()
    local.stop()


def test_the_nodes_refuse_writes_to_a_slot_they_do_not_serve(cluster: LocalCluster) -> None:
    owner = cluster.primary_of_slot(1000)
    other = next(node for node in cluster.primaries() if node is not owner)
    key = next(key for key in (f"k{i}" for i in range(10**6)) if key_slot(key.encode()) == 1000)
    with connect(other) as one, pytest.raises(MovedError) as moved:
        one.set(key, "x")
    assert (moved.value.slot_id, moved.value.port) == (1000, owner.port)
