"""The storage contract (nba/store/contract.py), tested through the Protocol alone.

Every implementation runs this suite unchanged: the `storage` fixture names them (one Redis, a real Redis
Cluster of 3 primaries with a replica each, a real primary with a replica watched by 3 sentinels).
Nothing here reads a key or knows a layout: tests/store/test_redis_layout.py checks what is particular
to the Redis implementation.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis, RedisCluster

from nba.app import redis_client
from nba.store import history
from nba.store.contract import (
    DecisionWrite,
    EventArgs,
    InboxBacklog,
    LearningCommit,
    PerfCell,
    Recorded,
    RequestMark,
    Storage,
    Tally,
)
from nba.store.keys import DECISION_TTL, HISTORY_TTL, REQUESTS_MAX
from nba.store.redis import Store

NOW_MS = 1_795_435_200_000  # 2026-11-23T12:00:00Z
REWARDS = {("web", "accept"): 1.0, ("web", "click"): 0.2}


@pytest.fixture(params=["redis", "cluster", "sentinel"])
async def storage(request: pytest.FixtureRequest, redis_url: str, redis: Redis) -> AsyncIterator[Storage]:
    """A fresh, empty store of each implementation: one Redis, a Redis Cluster of 3 primaries, and a primary
    watched by 3 sentinels."""
    url = redis_url
    if request.param == "cluster":
        url = request.getfixturevalue("redis_cluster").seed_url
        client = redis_client(url, 5.0)
        await client.flushall(target_nodes=RedisCluster.PRIMARIES)
        await client.aclose()
    elif request.param == "sentinel":
        deployment = request.getfixturevalue("redis_sentinel")
        await asyncio.to_thread(deployment.flushall)
        url = deployment.sentinel_url
    store: Storage = Store(redis_client(url, 5.0))
    yield store
    await store.close()


def _event(
    eid: str,
    cid: str = "c-1",
    etype: str = "click",
    action: str = "a1",
    decision: str | None = None,
    ts_ms: int = NOW_MS,
) -> EventArgs:
    return EventArgs(cid, eid, ts_ms, etype, action, "web", decision)


def _meta(deadline_ms: int = NOW_MS + 86_400_000) -> str:
    return f"web|other|model|{deadline_ms}||"


async def _decide(
    storage: Storage, cid: str = "c-1", did: str = "d1", actions: tuple[str, ...] = ("a1",), meta: str | None = None
) -> Recorded:
    snap = await storage.read_customer(cid)
    return await storage.record_decision(
        cid,
        snap.version,
        DecisionWrite(
            did,
            NOW_MS,
            orjson.dumps({"decision_id": did}),
            [(a, meta or _meta()) for a in actions],
            "web",
            anonymous_ttl=DECISION_TTL,
        ),
    )


# ------------------------------------------------------------------------------------ customers


async def test_a_profile_is_written_by_compare_and_set_and_read_back(storage: Storage) -> None:
    assert await storage.get_profile("c-1") == (None, b"")
    assert await storage.write_profile("c-1", "", {"plan": "large", "n": 3}, 5, "sv", NOW_MS) == 1
    assert await storage.write_profile("c-1", "", {"plan": "small"}, 5, "sv", NOW_MS) == -1  # must not exist
    assert await storage.write_profile("c-1", "7", {"plan": "small"}, 5, "sv", NOW_MS) == -1  # stale
    assert await storage.write_profile("c-1", "1", {"plan": "medium"}, 6, "sv2", NOW_MS + 1) == 2
    assert await storage.write_profile("c-1", "*", {"plan": "medium", "n": 1}, 6, "sv2", NOW_MS + 2) == 3
    profile, _ = await storage.get_profile("c-1")
    assert profile is not None
    assert (profile.attributes, profile.segments, profile.segments_version, profile.revision, profile.updated_ms) == (
        {"plan": "medium", "n": 1},
        6,
        "sv2",
        "3",
        NOW_MS + 2,
    )
    snap = await storage.read_customer("c-1")
    assert (snap.attributes, snap.segments, snap.segments_version) == ({"plan": "medium", "n": 1}, 6, "sv2")


async def test_customers_with_profiles_lists_each_profile_once(storage: Storage) -> None:
    ids = {f"c-{i}" for i in range(2500)}
    for cid in ids:
        assert await storage.write_profile(cid, "*", {"plan": "large"}, 0, "sv", NOW_MS) == 1
    # a customer known only from events, and a profile's decision keys, are not listed
    await storage.apply_events({"anon": [_event("e-1", "anon")]}, NOW_MS, {"anon": 3600})
    assert await _decide(storage, "c-1") is Recorded.RECORDED
    await storage.erase("c-7", NOW_MS)
    found: list[str] = []
    async for batch in storage.customers_with_profiles(batch=300):
        assert 0 < len(batch) <= 300
        found.extend(batch)
    assert len(found) == len(set(found))
    assert set(found) == ids - {"c-7"}


async def test_many_customers_read_at_once_read_as_each_alone(storage: Storage) -> None:
    for i in range(50):
        assert await storage.write_profile(f"c-{i}", "*", {"plan": "large", "n": i}, i, "sv", NOW_MS) == 1
    assert await _decide(storage, "c-3") is Recorded.RECORDED
    ids = [f"c-{i}" for i in range(60)]  # the last ten have no profile
    together = await storage.read_customers(ids)
    alone = [await storage.read_customer(c) for c in ids]
    assert together == alone
    assert together[3].history  # type: ignore[union-attr]
    assert together[59].attributes is None  # type: ignore[union-attr]


async def test_an_unknown_customer_reads_as_empty(storage: Storage) -> None:
    snap = await storage.read_customer("nobody", "call-1")
    assert (snap.attributes, snap.segments, snap.history, snap.contact_actions, snap.version) == (
        None,
        None,
        b"",
        0,
        "0",
    )


# ------------------------------------------------------------------------------------ decisions


async def test_a_decision_is_recorded_only_on_the_history_it_was_ranked_on(storage: Storage) -> None:
    before = await storage.read_customer("c-1")
    assert await _decide(storage, did="d1") is Recorded.RECORDED
    after = await storage.read_customer("c-1")
    assert after.version != before.version
    assert after.history  # the returned action is reserved
    stale = await storage.record_decision(
        "c-1", before.version, DecisionWrite("d2", NOW_MS, b"{}", [("a1", _meta())], "web", anonymous_ttl=DECISION_TTL)
    )
    assert stale is Recorded.CHANGED
    assert [r["decision_id"] for r in await storage.decision_records("c-1")] == ["d1"]
    assert [c async for c in storage.customers_with_decisions()] == ["c-1"]


async def test_decisions_in_one_contact_are_counted(storage: Storage) -> None:
    snap = await storage.read_customer("c-1", "call-1")
    write = DecisionWrite("d1", NOW_MS, b"{}", [("a1", _meta()), ("a2", _meta())], "web", "call-1", 60, DECISION_TTL)
    assert await storage.record_decision("c-1", snap.version, write) is Recorded.RECORDED
    assert (await storage.read_customer("c-1", "call-1")).contact_actions == 2
    assert (await storage.read_customer("c-1", "call-2")).contact_actions == 0


async def _decide_once(storage: Storage, did: str, request_id: str, until_ms: int = NOW_MS + 60_000) -> Recorded:
    snap = await storage.read_customer("c-1")
    mark = RequestMark(request_id, "fp", until_ms, orjson.dumps({"decision_id": did}))
    record = orjson.dumps({"decision_id": did})
    write = DecisionWrite(did, NOW_MS, record, [("a1", _meta())], "web", anonymous_ttl=DECISION_TTL, request=mark)
    return await storage.record_decision("c-1", snap.version, write)


async def test_a_request_id_names_one_decision_until_it_ends(storage: Storage) -> None:
    assert await storage.find_request("c-1", "view-1", NOW_MS) is None
    assert await _decide_once(storage, "d1", "view-1") is Recorded.RECORDED
    found = await storage.find_request("c-1", "view-1", NOW_MS)
    assert found is not None
    assert (found.decision_id, found.fingerprint, orjson.loads(found.answer)) == ("d1", "fp", {"decision_id": "d1"})
    # a twin ranked on the same history, or on a newer one: nothing written, the first one stands
    assert await _decide_once(storage, "d2", "view-1") is Recorded.REPEATED
    assert [r["decision_id"] for r in await storage.decision_records("c-1")] == ["d1"]
    assert await storage.find_request("c-1", "view-1", NOW_MS + 60_000) is None  # it ended
    assert await storage.find_request("c-2", "view-1", NOW_MS) is None  # another customer's


async def test_a_customer_remembers_a_bounded_number_of_request_ids(storage: Storage) -> None:
    for i in range(REQUESTS_MAX + 1):  # the first ends first: it goes
        assert await _decide_once(storage, f"d{i}", f"view-{i}", NOW_MS + 60_000 + i) is Recorded.RECORDED
    assert await storage.find_request("c-1", "view-0", NOW_MS) is None
    for i in range(1, REQUESTS_MAX + 1):
        assert await storage.find_request("c-1", f"view-{i}", NOW_MS) is not None, i


# ------------------------------------------------------------------------------------ events


async def test_events_are_applied_once_and_say_what_they_answer(storage: Storage) -> None:
    await _decide(storage, did="d1", actions=("a1",))
    statuses = await remembered(
        storage,
        {
            "c-1": [
                _event("e1", action="a1", decision="d1", etype="impression"),  # answers d1
                _event("e2", action="a9"),  # no decision showed a9
                _event("e1", action="a1", decision="d1", etype="impression"),  # the same id in the batch
            ]
        },
        NOW_MS,
    )
    assert statuses == {"c-1": ["credited", "hist", "dup"]}
    assert await remembered(storage, {"c-1": [_event("e2", action="a9")]}, NOW_MS) == {"c-1": ["dup"]}
    late = await remembered(
        storage, {"c-1": [_event("e3", action="a1", decision="d1", ts_ms=NOW_MS + 2 * 86_400_000)]}, NOW_MS
    )
    assert late == {"c-1": ["late"]}
    _, hist = await storage.get_profile("c-1")
    keys = {history.event_key(e) for e in ("e1", "e2", "e3")}
    assert all(k.encode() in hist for k in keys)


# ------------------------------------------------------------------------------------ the learner


async def test_only_the_lease_holder_commits_and_the_position_moves_with_the_batch(storage: Storage) -> None:
    assert await storage.take_lease("t1", 10_000)
    assert not await storage.take_lease("t2", 10_000)
    assert await storage.take_lease("t1", 10_000)  # renewed
    await remembered(storage, {"c-1": [_event("e1"), _event("e2")]}, NOW_MS)
    batch = await storage.read_inbox(await storage.learner_position(), 10)
    assert [e.event_id for _, e in batch.entries] == ["e1", "e2"]
    assert list(batch.last.values()) == [batch.entries[-1][0]]  # both events in their customer's one shard
    assert not await storage.commit_learning(
        "t2", 10_000, LearningCommit(batch.last, [(Tally.EVENTS, "a1:click", 2.0)], {}, "")
    )
    version = await storage.model_version()
    assert await storage.commit_learning(
        "t1", 10_000, LearningCommit(batch.last, [(Tally.EVENTS, "a1:click", 2.0)], {}, "")
    )
    position = await storage.learner_position()
    assert position.items() >= batch.last.items()
    assert (await storage.read_inbox(position, 10)).last == {}
    assert await storage.model_version() != version
    assert await storage.event_counts() == {("a1", "click"): 2}
    await storage.release_lease("t1")
    assert await storage.take_lease("t2", 10_000)


async def test_an_answer_is_credited_once_and_a_replay_gets_the_same_grant(storage: Storage) -> None:
    await _decide(storage, did="d1")
    await remembered(storage, {"c-1": [_event("e1", etype="accept", decision="d1")]}, NOW_MS)
    batch = await storage.read_inbox({}, 10)
    first = await storage.credit_events(batch.entries, REWARDS, {})
    assert [(g.status, g.trial, g.reward, g.counted) for g in first] == [("granted", 1.0, 1.0, True)]
    replay = await storage.credit_events(batch.entries, REWARDS, {})  # the learner died before committing
    assert [(g.status, g.trial, g.reward, g.counted) for g in replay] == [("granted", 1.0, 1.0, True)]
    await remembered(storage, {"c-1": [_event("e1", etype="accept", decision="d1")]}, NOW_MS)  # re-sent
    assert batch.last
    resent = await storage.read_inbox(batch.last, 10)
    again = await storage.credit_events(resent.entries, REWARDS, batch.last)
    assert [(g.status, g.trial, g.reward, g.counted) for g in again] == [("dup", 0.0, 0.0, False)]


async def test_events_without_a_decision_are_counted_once(storage: Storage) -> None:
    await remembered(storage, {"c-1": [_event("e1")]}, NOW_MS)
    await remembered(storage, {"c-1": [_event("e1")]}, NOW_MS)  # re-sent before the learner ran
    batch = await storage.read_inbox({}, 10)
    grants = await storage.credit_events(batch.entries, REWARDS, {})
    assert [(g.status, g.counted) for g in grants] == [("none", True), ("none", False)]
    assert batch.last
    await storage.clear_tally_marks(["c-1"], batch.last)
    assert [g.counted for g in await storage.credit_events(batch.entries, REWARDS, batch.last)] == [False, False]


async def test_wait_inbox_returns_when_an_event_arrives(storage: Storage) -> None:
    position = await storage.learner_position()
    assert await storage.wait_inbox(position, 0.2) is False
    waiting = asyncio.ensure_future(storage.wait_inbox(position, 30))
    await asyncio.sleep(0.05)
    await remembered(storage, {"c-1": [_event("e1")]}, NOW_MS)
    assert await asyncio.wait_for(waiting, 30) is True


# ------------------------------------------------------------------------------------ the model


async def test_the_model_is_read_at_one_version(storage: Storage) -> None:
    assert await storage.take_lease("t", 10_000)
    await remembered(storage, {"c-1": [_event("e1")]}, NOW_MS)
    batch = await storage.read_inbox({}, 10)
    assert batch.last
    row = bytes(range(8))
    increments = [
        (Tally.COUNTS, "n:a1:other", 3.0),
        (Tally.COUNTS, "r:a1:other", 1.0),
        (Tally.ARMS, "n:model", 3.0),
        (Tally.ARMS, "r:model", 1.0),
    ]
    assert await storage.commit_learning("t", 10_000, LearningCommit(batch.last, increments, {"a1": row}, "sig"))
    data = await storage.model_data()
    assert data.version == await storage.model_version()
    assert data.counts == {("a1", "other"): (3.0, 1.0)}
    assert data.arms == {"model": (3.0, 1.0)}
    assert (data.contextual, data.signature) == ({"a1": row}, "sig")


# ------------------------------------------------------------------------------------ rules


async def test_rules_publish_rollback_and_their_source(storage: Storage) -> None:
    assert await storage.current_rules_version() is None
    assert await storage.publish_rules("v1", {"a.yaml": "1"}, force=False)
    assert await storage.publish_rules("v2", {"a.yaml": "2"}, force=False)
    assert await storage.rules_files("v2") == {"a.yaml": "2"}
    assert await storage.rollback_rules() == "v1"
    assert await storage.current_rules_version() == "v1"
    assert not await storage.publish_rules("v2", {"a.yaml": "2"}, force=False)  # the source did not change
    assert await storage.current_rules_version() == "v1"
    assert await storage.rules_source_version() == "v2"
    assert await storage.publish_rules("v2", {"a.yaml": "2"}, force=True)
    assert await storage.current_rules_version() == "v2"
    assert await storage.rollback_rules() == "v1"
    assert await storage.rollback_rules() is None  # nothing older


# ------------------------------------------------------------------------------------ erasure


async def test_an_erased_customer_is_gone_and_does_not_come_back_until_a_new_profile(storage: Storage) -> None:
    await storage.write_profile("c-1", "", {"plan": "large"}, 1, "sv", NOW_MS)
    await _decide(storage, did="d1")
    await remembered(storage, {"c-1": [_event("e1", decision="d1")]}, NOW_MS)
    assert await storage.erase("c-1", NOW_MS) >= 1
    assert await storage.get_profile("c-1") == (None, b"")
    assert await storage.decision_records("c-1") == []
    assert (await storage.read_inbox({}, 10)).entries == []
    assert await remembered(storage, {"c-1": [_event("e2")]}, NOW_MS) == {"c-1": ["erased"]}
    assert await _decide(storage, did="d2") is Recorded.ERASED
    assert await _decide_once(storage, "d3", "view-1") is Recorded.ERASED
    assert await storage.find_request("c-1", "view-1", NOW_MS) is None
    assert (await storage.read_customer("c-1")).history == b""
    await storage.write_profile("c-1", "", {"plan": "small"}, 1, "sv", NOW_MS)  # a new relationship
    assert await remembered(storage, {"c-1": [_event("e3")]}, NOW_MS) == {"c-1": ["hist"]}


async def remembered(store: Any, by_customer: Any, now_ms: int | None = None) -> Any:
    """apply_events for customers without a profile on a channel that remembers them (rules: remember_anonymous)."""
    return await store.apply_events(by_customer, now_ms, {c: HISTORY_TTL for c in by_customer})


# ------------------------------------------------------------------------------------ outbound runs


async def test_outbound_runs_keep_their_documents_selections_usage_and_prices(storage: Storage) -> None:
    for i in range(3):
        await storage.save_outbound_run(f"run-{i}", orjson.dumps({"n": i}), NOW_MS + i)
    await storage.save_outbound_run("run-1", orjson.dumps({"n": 11}), NOW_MS + 1)  # an update
    assert await storage.outbound_runs(10) == ["run-2", "run-1", "run-0"]
    assert orjson.loads(await storage.outbound_run("run-1") or b"") == {"n": 11}
    assert await storage.outbound_run("run-9") is None
    chunks = [b"".join(b'{"line": %d}\n' % (j * 10 + k) for k in range(10)) for j in range(70)]
    for chunk in chunks:
        await storage.add_outbound_selection("run-1", chunk)
    assert [c async for c in storage.outbound_selection("run-1")] == chunks  # more than one page
    assert [c async for c in storage.outbound_selection("run-9")] == []
    await storage.add_outbound_used("email", "2026-11-23", {"*": 3, "tv-addon": 2, "sim-only": 1})
    await storage.add_outbound_used("email", "2026-11-23", {"*": 1, "tv-addon": 1})
    await storage.add_outbound_used("email", "2026-11-24", {"*": 5})
    assert await storage.outbound_used("email", "2026-11-23") == {"*": 4, "tv-addon": 3, "sim-only": 1}
    # an action's volume is its own, over every channel; a channel's capacity is the channel's
    await storage.add_outbound_used("call_center", "2026-11-23", {"*": 2, "tv-addon": 2})
    assert await storage.outbound_used("call_center", "2026-11-23") == {"*": 2, "tv-addon": 5, "sim-only": 1}
    await storage.add_outbound_used("call_center", "2026-11-23", {"*": -1, "tv-addon": -1})  # given back
    assert await storage.outbound_used("email", "2026-11-23") == {"*": 4, "tv-addon": 4, "sim-only": 1}
    assert await storage.outbound_used("app", "2026-11-25") == {"*": 0}
    day_ms = 86_400_000
    today = orjson.dumps({"price": 0.5, "from_ms": NOW_MS, "until_ms": NOW_MS + day_ms})
    await storage.set_capacity_price("call_center", "2026-11-23", today, NOW_MS)
    tomorrow = orjson.dumps({"price": 0.7, "from_ms": NOW_MS + day_ms, "until_ms": NOW_MS + 2 * day_ms})
    await storage.set_capacity_price("call_center", "2026-11-24", tomorrow, NOW_MS)
    await storage.set_capacity_price("app", "2026-11-23", today, NOW_MS)
    assert await storage.capacity_prices() == {
        "call_center|2026-11-23": today,
        "call_center|2026-11-24": tomorrow,
        "app|2026-11-23": today,
    }
    # the next day's price replaces only what has ended, of its own channel
    await storage.set_capacity_price("call_center", "2026-11-24", tomorrow, NOW_MS + day_ms)
    assert set(await storage.capacity_prices()) == {"call_center|2026-11-24", "app|2026-11-23"}


async def test_one_real_run_holds_the_lock_at_a_time(storage: Storage) -> None:
    assert await storage.lock_outbound("a", 60_000)
    assert await storage.lock_outbound("a", 60_000)  # renewed by its holder
    assert not await storage.lock_outbound("b", 60_000)
    await storage.unlock_outbound("b")  # not b's to give back
    assert not await storage.lock_outbound("b", 60_000)
    await storage.unlock_outbound("a")
    assert await storage.lock_outbound("b", 60_000)


async def test_the_boards_counters_are_read_by_hour_and_by_day(storage: Storage) -> None:
    assert await storage.take_lease("t", 10_000)
    await remembered(storage, {"c-1": [_event("e1")]}, NOW_MS)
    batch = await storage.read_inbox({}, 10)
    # near real time: the counters expire on Redis's clock, a week after their day
    today = int(time.time()) // 86400 * 24
    first = dt.datetime.fromtimestamp(today * 3600, dt.UTC).replace(day=1)
    month = int(first.timestamp()) // 3600  # the first hour of this month
    cells = {
        PerfCell(today - 1, "a1", "web", "model", "impression"): 2.0,  # yesterday's last hour
        PerfCell(today, "a1", "web", "model", "impression"): 3.0,
        PerfCell(today, "a1", "web", "control", "accept"): 1.0,
        PerfCell(month - 1, "a2", "email", "none", "value"): 12.5,  # the last hour of last month
    }
    assert await storage.commit_learning("t", 10_000, LearningCommit(batch.last, [], {}, "", performance=cells))
    by_hour = await storage.performance(today - 1, today + 1, by_day=False)
    assert by_hour == {c: v for c, v in cells.items() if c.hour >= today - 1}
    assert await storage.performance(today, today + 1, by_day=False) == {
        c: v for c, v in cells.items() if c.hour == today
    }
    assert await storage.performance(month - 24, today + 24, by_day=True) == {
        PerfCell(today - 24, "a1", "web", "model", "impression"): 2.0,
        PerfCell(today, "a1", "web", "model", "impression"): 3.0,
        PerfCell(today, "a1", "web", "control", "accept"): 1.0,
        PerfCell(month - 24, "a2", "email", "none", "value"): 12.5,
    }
    assert await storage.performance(today, today + 24, by_day=True) == {
        c: v for c, v in cells.items() if c.hour == today
    }
    assert (await storage.inbox_backlog()).pending == 0
    assert await storage.model_updated_ms() is not None


async def test_the_inbox_backlog_is_what_the_learner_has_not_committed(storage: Storage) -> None:
    assert await storage.inbox_backlog() == InboxBacklog(0, None)
    await remembered(storage, {"c-1": [_event("e1")], "c-2": [_event("e2")]}, NOW_MS)
    backlog = await storage.inbox_backlog()
    assert backlog.pending == 2
    assert backlog.oldest_ms is not None
