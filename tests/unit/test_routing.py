"""Where a command goes, and what a Redis URL names: pure logic, no Redis (the real clusters and
sentinels are in tests/store/test_contract.py and tests/test_failover.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nba.store import keys
from nba.store.client import redis_client, router_for, seed_nodes, sentinel_url
from nba.store.cluster import ClusterRouter, parse_address
from nba.store.routing import key_slot, routing_key


def test_slots_are_redis_cluster_s() -> None:
    # the examples of the Redis Cluster specification, and slots redis-cli's CLUSTER KEYSLOT gives
    assert key_slot("foo") == 12182
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers") == key_slot("user1000")
    assert key_slot("foo{}{bar}") == key_slot(b"foo{}{bar}")  # an empty tag: the whole key
    assert key_slot("foo{}{bar}") != key_slot("bar")
    assert key_slot("foo{{bar}}zap") == key_slot("{bar")  # the first { to the next }
    assert key_slot("foo{bar}{zap}") == key_slot("bar")
    assert key_slot(keys.customer("c-42")) == keys.customer_slot("c-42")


def test_every_key_of_a_customer_and_its_tombstone_share_its_slot() -> None:
    for cid in ("c-1", "c-42", "ü-7", "x" * 200):
        slot = keys.customer_slot(cid)
        for key in (keys.customer(cid), keys.decisions(cid), keys.shown(cid), keys.contacts(cid), keys.erased(cid)):
            assert key_slot(key) == slot
        assert key_slot(keys.decision(cid, "d-1")) == slot


def test_inbox_shards_sit_in_their_slot_ranges() -> None:
    assert keys.inbox(0, 1) == keys.LEARN_INBOX  # one Redis: the key of before the shards
    for shards in (2, 3, 6, 16):
        for i in range(shards):
            slot = key_slot(keys.inbox(i, shards))
            assert i * 16384 // shards <= slot < (i + 1) * 16384 // shards + 1
            # a customer whose slot is next to the stream's goes to that shard
            assert keys.inbox_shard_of_slot(slot, shards) == i
    assert {keys.inbox_shard(f"c-{n}", 6) for n in range(500)} == set(range(6))


def test_routing_keys_of_the_commands_nba_sends() -> None:
    assert routing_key(("EVALSHA", "abc", 2, "k1", "k2", "arg")) == "k1"
    assert routing_key(("HMGET", "k", "a", "b")) == "k"
    assert routing_key(("XREAD", "COUNT", 1, "BLOCK", 10, "STREAMS", "s", "0")) == "s"
    with pytest.raises(ValueError, match="without keys"):
        routing_key(("EVALSHA", "abc", 0))


def test_urls_name_one_server_several_seeds_or_sentinels() -> None:
    assert seed_nodes("redis://:pw@h1:7000/0") == ("redis://:pw@h1:7000/0", [("h1", 7000)])
    assert seed_nodes("redis://u:pw@h1:7000,h2:7001, h3:7002?ssl_cert_reqs=none") == (
        "redis://u:pw@h1:7000?ssl_cert_reqs=none",
        [("h1", 7000), ("h2", 7001), ("h3", 7002)],
    )
    assert seed_nodes("unix:///run/redis.sock") == ("unix:///run/redis.sock", [])
    assert seed_nodes("redis://localhost") == ("redis://localhost:6379", [("localhost", 6379)])
    assert seed_nodes("rediss://h1,h2:7001/0") == ("rediss://h1:6379/0", [("h1", 6379), ("h2", 7001)])
    assert seed_nodes("redis://[::1]:7000,[fe80::2]") == ("redis://[::1]:7000", [("::1", 7000), ("fe80::2", 6379)])
    with pytest.raises(ValueError, match="host:port"):
        seed_nodes("redis://h1:7000,h2:x")
    assert parse_address("127.0.0.1:7000") == ("127.0.0.1", 7000)
    assert parse_address("::1:7000") == ("::1", 7000)

    assert sentinel_url("redis://h:1") is None
    parsed = sentinel_url("redis+sentinel://:pw@s1:26379,s2:26380/mymaster/2?sentinel_password=s%40pw")
    assert parsed is not None
    assert parsed.sentinels == [("s1", 26379), ("s2", 26380)]
    assert parsed.service == "mymaster"
    assert parsed.options["password"] == "pw"
    assert parsed.options["db"] == 2
    assert parsed.sentinel_options == {"password": "s@pw"}
    tls = sentinel_url("rediss+sentinel://s1:26379/m?ssl_cert_reqs=none")
    assert tls is not None
    assert tls.options["ssl"] is True
    assert tls.sentinel_options["ssl"] is True
    with pytest.raises(ValueError, match="names the service"):
        sentinel_url("redis+sentinel://s1:26379")


def test_a_tls_cluster_s_settings_reach_the_pipelined_connections() -> None:
    # nothing connects: the clients are objects until their first command
    ca = Path(__file__).resolve().parent.parent / "tls" / "ca.crt"
    client = redis_client(f"rediss://:pw@127.0.0.1:1,127.0.0.1:2?ssl_ca_certs={ca}", 1.0)
    router = router_for(client)
    assert isinstance(router, ClusterRouter)
    seed = router.topology.seeds[0]
    assert (seed.password, seed.tls is not None) == ("pw", True)
    assert [(s.host, s.port) for s in router.topology.seeds] == [("127.0.0.1", 1), ("127.0.0.1", 2)]
