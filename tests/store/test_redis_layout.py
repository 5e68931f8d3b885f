"""The one-key customer layout (store/keys.py) against a real redis-server: the packed history's order,
duplicates and trimming, expiry of customers without a profile, and the shared attribute codes."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from nba.app import redis_client
from nba.errors import StoredDataUnreadable
from nba.store import history, keys, scripts
from nba.store.contract import DecisionWrite, EventArgs, Recorded, RequestMark
from nba.store.keys import HISTORY_TTL
from nba.store.redis import Store


@pytest.fixture
async def store(redis_url: str, redis: Redis) -> AsyncIterator[Store]:
    s = Store(redis_client(redis_url, 5.0))
    yield s
    await s.close()


def _event(event_id: str, ts_ms: int, cid: str = "c-1", etype: str = "impression") -> EventArgs:
    return EventArgs(cid, event_id, ts_ms, etype, "broadband-bundle", "web", None)


async def _stored(redis: Redis, cid: str = "c-1") -> list[tuple[int, str]]:
    raw: bytes = await redis.hget(keys.customer(cid), keys.Field.HISTORY) or b""  # type: ignore[assignment]
    rows = [line.split("|") for line in raw.decode().splitlines()]
    return [(int(t, 36), eid) for t, _, _, _, eid in rows]


async def test_late_events_are_kept_in_order_and_duplicates_are_found(store: Store, redis: Redis) -> None:
    t = int(time.time() * 1000) - 60_000
    first = await remembered(
        store, {"c-1": [_event("e3", t + 3000), _event("e1", t + 1000), _event("e2", t + 2000), _event("e1", t + 1000)]}
    )
    assert first == {"c-1": ["hist", "hist", "hist", "dup"]}  # the repeat inside one batch too
    assert [ts for ts, _ in await _stored(redis)] == [t + 1000, t + 2000, t + 3000]
    again = await remembered(store, {"c-1": [_event("e2", t + 2000), _event("e0", t), _event("e3", t + 3000)]})
    assert again == {"c-1": ["dup", "hist", "dup"]}
    stored = await _stored(redis)
    assert stored == [(t + k * 1000, history.event_key(f"e{k}")) for k in range(4)]
    assert await redis.hget(keys.customer("c-1"), keys.Field.VERSION) == b"2"  # one per batch that changed it


async def test_the_history_is_trimmed_to_its_age_and_size_limits(
    store: Store, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys, "HISTORY_MAX", 5)
    monkeypatch.setattr(keys, "HISTORY_TTL", 10 * keys.DAY)
    now = int(time.time() * 1000)
    old = now - 20 * keys.DAY * 1000  # inside the dedupe window, outside the history's
    events = [_event(f"e{k}", now - k * 60_000) for k in range(8)] + [_event("old", old)]
    await remembered(store, {"c-1": events})
    stored = await _stored(redis)
    assert [eid for _, eid in stored] == [history.event_key(f"e{k}") for k in (4, 3, 2, 1, 0)]


async def test_a_customer_without_a_profile_expires_with_its_history(store: Store, redis: Redis) -> None:
    key = keys.customer("c-1")
    await remembered(store, {"c-1": [_event("e1", int(time.time() * 1000))]})
    assert 0 < await redis.ttl(key) <= keys.HISTORY_TTL
    assert await store.write_profile("c-1", "*", {"age": 40}, 0, "v1", 1) == 1
    assert await redis.ttl(key) == -1  # the profile makes it permanent
    await remembered(store, {"c-1": [_event("e2", int(time.time() * 1000))]})
    assert await redis.ttl(key) == -1
    profile, packed = await store.get_profile("c-1")
    assert profile is not None
    assert profile.attributes == {"age": 40}
    assert packed.count(b"\n") == 2


async def test_profiles_store_attribute_codes_that_every_process_can_read(
    redis_url: str, store: Store, redis: Redis
) -> None:
    await store.write_profile("c-1", "*", {"age": 40, "plan": "basic"}, 5, "v1", 1)
    raw = await redis.hget(keys.customer("c-1"), keys.Field.ATTRIBUTES)
    assert raw == b'[0,40,1,"basic"]'  # codes, not names
    other = Store(redis_client(redis_url, 5.0))  # another process: it has not seen these attributes
    try:
        profile, _ = await other.get_profile("c-1")
        assert profile is not None
        assert profile.attributes == {"age": 40, "plan": "basic"}
        assert profile.segments == 5
        await other.write_profile("c-2", "*", {"tenure_months": 3, "age": 20}, 0, "v1", 1)
        assert (await store.read_customer("c-2")).attributes == {"tenure_months": 3, "age": 20}
        assert await redis.hgetall(keys.ATTRIBUTE_CODES) == {b"age": b"0", b"plan": b"1", b"tenure_months": b"2"}
    finally:
        await other.close()
    await redis.delete(keys.ATTRIBUTE_CODES)
    fresh = Store(redis_client(redis_url, 5.0))
    try:
        with pytest.raises(StoredDataUnreadable):
            await fresh.get_profile("c-1")
    finally:
        await fresh.close()


def test_packed_entries_read_back_newest_first_down_to_the_horizon() -> None:
    raw = history.pack([(1_795_435_200_000 - k * 1000, "click", f"a{k}", "web", f"e{k}") for k in range(5)])
    assert history.ts36(1_795_435_200_000) == "mwt7reo0"
    assert int("mwt7reo0", 36) == 1_795_435_200_000
    rows = list(history.newest_first(raw, 1_795_435_200_000 - 2000))
    assert rows == [(1_795_435_200_000 - k * 1000, 1, f"a{k}", "web") for k in range(3)]
    assert len(history.event_key("x" * 128)) == 11
    assert history.event_key("a") != history.event_key("b")


async def test_events_reach_the_inbox_in_the_same_round_trip_as_the_histories_and_a_failed_inbox_fails_the_batch(
    store: Store, redis: Redis
) -> None:
    t = int(time.time() * 1000) - 60_000
    # a fresh store: its first batch also opens the connection, and the inbox write still follows the histories
    assert await remembered(store, {"c-1": [_event("e1", t)], "c-2": [_event("e2", t, "c-2")]}) == {
        "c-1": ["hist"],
        "c-2": ["hist"],
    }
    assert await redis.xlen(keys.LEARN_INBOX) == 2
    # an inbox that cannot be written (a wrong type at its key) fails the batch instead of answering it
    await redis.delete(keys.LEARN_INBOX)
    await redis.set(keys.LEARN_INBOX, "not a stream")
    with pytest.raises(ResponseError):
        await remembered(store, {"c-1": [_event("e3", t + 1000)]})
    # ... though the histories, sent in the same write, were applied; re-sending it once the inbox is back
    # queues the event again, and its history entry is not doubled
    await redis.delete(keys.LEARN_INBOX)
    assert await remembered(store, {"c-1": [_event("e3", t + 1000)]}) == {"c-1": ["dup"]}
    assert await redis.xlen(keys.LEARN_INBOX) == 1
    assert [eid for _, eid in await _stored(redis)] == [history.event_key("e1"), history.event_key("e3")]


def test_the_lua_scripts_name_the_customer_fields_as_keys_py_does() -> None:
    table = re.search(r"local F = \{(.*?)\}", scripts.CUSTOMER, re.S)
    assert table is not None
    in_lua = dict(re.findall(r"(\w+) = '(\w)'", table.group(1)))
    in_python = {name.lower(): value for name, value in vars(keys.Field).items() if name.isupper()}
    assert in_lua == in_python


async def remembered(store: Any, by_customer: Any, now_ms: int | None = None) -> Any:
    """apply_events for customers without a profile on a channel that remembers them (rules: remember_anonymous)."""
    return await store.apply_events(by_customer, now_ms, {c: HISTORY_TTL for c in by_customer})


async def test_a_new_process_reads_the_attribute_registry_once_for_many_profiles(
    store: Store, redis_url: str, redis: Redis
) -> None:
    """Another process wrote the profiles; this one reads 2,000 at once on a fresh start. One registry read
    serves them all: one each would need more connections than the client's pool of 256."""
    for i in range(2000):
        assert await store.write_profile(f"c-{i}", "*", {"plan": "large", "age": i}, 0, "sv", 1) == 1
    fresh = Store(redis_client(redis_url, 5.0))
    before = (await redis.info("commandstats")).get("cmdstat_hgetall", {}).get("calls", 0)
    try:
        read = await asyncio.gather(*(fresh.read_customer(f"c-{i}") for i in range(2000)))
    finally:
        await fresh.close()
    assert [r.attributes for r in read] == [{"plan": "large", "age": i} for i in range(2000)]
    assert (await redis.info("commandstats"))["cmdstat_hgetall"]["calls"] - before == 1


async def test_request_ids_are_trimmed_with_their_answers_and_expire_with_the_last(store: Store, redis: Redis) -> None:
    now = int(time.time() * 1000)

    async def record(did: str, request_id: str, until_ms: int, at_ms: int) -> None:
        snap = await store.read_customer("c-1")
        mark = RequestMark(request_id, "fp", until_ms, b"{}")
        write = DecisionWrite(did, at_ms, b"{}", [], "web", anonymous_ttl=keys.DAY, request=mark)
        assert await store.record_decision("c-1", snap.version, write) is Recorded.RECORDED

    await record("d1", "view-1", now + 1000, now)
    await record("d2", "view-2", now + 3_600_000, now)
    assert await redis.hexists(keys.decision("c-1", "d1"), "ans")
    assert 3_500 <= await redis.ttl(keys.requests("c-1")) <= 3_600  # with its last-ending entry
    await record("d3", "view-3", now + 62_000, now + 2000)  # view-1 ended: it goes, with its answer
    assert sorted(await redis.hkeys(keys.requests("c-1"))) == [b"view-2", b"view-3"]
    assert not await redis.hexists(keys.decision("c-1", "d1"), "ans")
    assert await redis.hget(keys.decision("c-1", "d1"), "rec") == b"{}"  # the decision log keeps it
    assert await redis.hget(keys.requests("c-1"), "view-3") == f"d3|{now + 62_000}|fp".encode()
