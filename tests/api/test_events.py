"""Events: idempotent, validated whole, credited to their decision from any channel."""

from __future__ import annotations

from redis.asyncio import Redis

from nba.store import keys
from nba.store.contract import LearningCommit, Tally
from tests.api.helpers import CROSSSELL_MOBILE, Client, decide, problem, put_customer, send_events
from tests.conftest import AppFactory, Clock, learn, learner


def _event(
    eid: str, etype: str, cid: str, action: str, decision: str | None = None, channel: str = "web"
) -> dict[str, object]:
    e: dict[str, object] = {"event_id": eid, "type": etype, "customer_id": cid, "action_id": action, "channel": channel}
    if decision is not None:
        e["decision_id"] = decision
    return e


async def _stats_cell(client: Client, action: str, key: str) -> dict[str, float]:
    await learn(client)
    body = await (await client.get("/v1/actions/stats")).json()
    a = next(a for a in body["actions"] if a["action_id"] == action)
    cell: dict[str, float] = next(s for s in a["segments"] if s["segment_key"] == key)
    return cell


async def test_duplicates_are_counted_once_within_and_across_batches(client: Client) -> None:
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    d = await decide(client, "c-1")
    action = d["actions"][0]["action_id"]
    batch = [
        _event("e1", "impression", "c-1", action, d["decision_id"]),
        _event("e1", "impression", "c-1", action, d["decision_id"]),
        _event("e2", "accept", "c-1", action, d["decision_id"]),
    ]
    assert await send_events(client, batch) == {
        "accepted": 2,
        "duplicates": 1,
        "credited": 2,
        "unattributed": 0,
        "erased": 0,
        "unknown_customer": 0,
    }
    assert await send_events(client, batch) == {
        "accepted": 0,
        "duplicates": 3,
        "credited": 0,
        "unattributed": 0,
        "erased": 0,
        "unknown_customer": 0,
    }
    cell = await _stats_cell(client, action, "mid_value")
    assert (cell["trials"], cell["rewards"]) == (1.0, 1.0)
    customer = await (await client.get("/v1/customers/c-1")).json()
    assert customer["history"]["by_action"][action] == {"impression": 1, "accept": 1}


async def test_one_trial_per_shown_action_and_reward_is_the_best_answer(client: Client) -> None:
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    d = await decide(client, "c-1")
    action = d["actions"][0]["action_id"]
    did = d["decision_id"]
    await send_events(
        client,
        [
            _event("a", "click", "c-1", action, did),
            _event("b", "accept", "c-1", action, did),
            _event("c", "click", "c-1", action, did),
        ],
    )
    cell = await _stats_cell(client, action, "mid_value")
    assert cell["trials"] == 1.0
    assert cell["rewards"] == 1.0  # click 0.2, then accept lifts it to 1, a later click adds nothing


async def test_answer_on_another_channel_credits_the_decision(client: Client) -> None:
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    d = await decide(client, "c-1", "web")
    action = d["actions"][0]["action_id"]
    result = await send_events(client, [_event("x", "accept", "c-1", action, d["decision_id"], "call_center")])
    assert result["credited"] == 1
    assert (await _stats_cell(client, action, "mid_value"))["rewards"] == 1.0


async def test_events_for_actions_no_decision_showed_feed_history_not_the_model(client: Client) -> None:
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    d = await decide(client, "c-1")
    shown = {a["action_id"] for a in d["actions"]}
    others = [
        a for a in ("loyalty-gift", "tv-addon", "email-capture", "sim-only", "broadband-bundle") if a not in shown
    ]
    result = await send_events(
        client,
        [
            _event("h", "accept", "c-1", others[0]),
            _event("u1", "accept", "c-1", others[1], d["decision_id"]),
            _event("u2", "accept", "c-1", others[0], "no-such-decision"),
        ],
    )
    assert result == {
        "accepted": 3,
        "duplicates": 0,
        "credited": 0,
        "unattributed": 2,
        "erased": 0,
        "unknown_customer": 0,
    }
    await learn(client)
    body = await (await client.get("/v1/actions/stats")).json()
    assert all(s["trials"] == 0 for a in body["actions"] for s in a["segments"])
    assert body["actions"][0]["events"] or any(a["events"] for a in body["actions"])  # counted as received


async def test_an_answer_without_decision_id_is_credited_to_the_decision_that_showed_it(client: Client) -> None:
    """The e-mail showed the offer; the customer accepts it on the phone, where the agent's screen has
    no decision_id: the e-mail's decision gets the credit."""
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    d = await decide(client, "c-1", "web")
    action = d["actions"][0]["action_id"]
    result = await send_events(client, [_event("p", "accept", "c-1", action, None, "call_center")])
    assert result["credited"] == 1
    cell = await _stats_cell(client, action, "mid_value")
    assert (cell["trials"], cell["rewards"]) == (1.0, 1.0)
    log = await (await client.get("/v1/customers/c-1")).json()
    assert log["customer_id"] == "c-1"


async def test_answers_after_the_attribution_window_do_not_train(make_client: object, rules_copy: object) -> None:
    from pathlib import Path

    from nba.rules.load import load_rulebook

    policy = Path(str(rules_copy)) / "policy.yaml"
    text = policy.read_text().replace("  refresh_seconds: 1.0", "  refresh_seconds: 1.0\n  attribution_window: 2h")
    policy.write_text(text)
    clock = Clock()
    client: Client = await make_client(load_rulebook(Path(str(rules_copy))), clock=clock)  # type: ignore[operator]
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    d = await decide(client, "c-1")
    action = d["actions"][0]["action_id"]
    clock.now += 2 * 3600 - 1
    assert (await send_events(client, [_event("in", "impression", "c-1", action, d["decision_id"])]))["credited"] == 1
    clock.now += 2
    late = await send_events(client, [_event("late", "accept", "c-1", action, d["decision_id"])])
    assert late == {
        "accepted": 1,
        "duplicates": 0,
        "credited": 0,
        "unattributed": 1,
        "erased": 0,
        "unknown_customer": 0,
    }
    cell = await _stats_cell(client, action, "mid_value")
    assert (cell["trials"], cell["rewards"]) == (1.0, 0.0)


async def test_the_learner_credits_each_event_once_even_when_replayed(client: Client, redis: Redis) -> None:
    """A learner that dies after crediting but before committing: the next one replays the same inbox
    entries and gets the same grants; a re-sent batch (new inbox entries, same event ids) gets none."""
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    d = await decide(client, "c-1")
    action = d["actions"][0]["action_id"]
    batch = [
        _event("i", "impression", "c-1", action, d["decision_id"]),
        _event("a", "accept", "c-1", action, d["decision_id"]),
    ]
    await send_events(client, batch)
    lr = learner(client)
    # credit without committing: what a learner does before it dies
    entries = (await lr.store.read_inbox({}, 100)).entries
    rewards = {("web", "accept"): 1.0}
    first = await lr.store.credit_events(entries, rewards, {})
    assert [(g.status, g.trial, g.reward) for g in first] == [("granted", 1.0, 0.0), ("granted", 0.0, 1.0)]
    again = await lr.store.credit_events(entries, rewards, {})
    assert [(g.status, g.trial, g.reward) for g in again] == [(g.status, g.trial, g.reward) for g in first]
    await send_events(client, batch)  # the channel re-sends: duplicates at the door, new inbox entries
    await lr.drain()
    assert await redis.xlen(keys.LEARN_INBOX) <= 1
    cell = await _stats_cell(client, action, "mid_value")
    assert (cell["trials"], cell["rewards"]) == (1.0, 1.0)


async def test_a_bad_event_rejects_the_whole_batch_and_names_every_problem(client: Client, redis: Redis) -> None:
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    batch = [
        _event("ok-1", "impression", "c-1", "broadband-bundle"),
        _event("bad-1", "purchase", "c-1", "broadband-bundle"),
        {**_event("bad-2", "accept", "c-{1}", "broadband-bundle"), "ts": "yesterday"},
        _event("ok-2", "impression", "c-1", "loyalty-gift", channel="fax"),
    ]
    resp = await client.post("/v1/events", json={"events": batch})
    body = await problem(resp, 400)
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"events[1].type", "events[2].customer_id", "events[2].ts", "events[3].channel"}
    assert await redis.hmget(keys.customer("c-1"), keys.Field.HISTORY, keys.Field.VERSION) == [None, None]


async def test_batch_limit(client: Client) -> None:
    events = [_event(f"e{i}", "impression", f"c-{i}", "broadband-bundle") for i in range(1001)]
    body = await problem(await client.post("/v1/events", json={"events": events}), 400)
    assert body["errors"][0]["field"] == "events"
    accepted = await send_events(client, events[:1000])
    assert accepted["accepted"] == 1000


async def test_event_timestamps_are_bounded(client: Client) -> None:
    future = _event("f", "impression", "c-1", "broadband-bundle") | {"ts": "2026-11-23T13:00:00Z"}
    old = _event("o", "impression", "c-1", "broadband-bundle") | {"ts": "2026-09-01T00:00:00Z"}
    naive = _event("n", "impression", "c-1", "broadband-bundle") | {"ts": "2026-11-23T11:00:00"}
    body = await problem(await client.post("/v1/events", json={"events": [future, old, naive]}), 400)
    assert [e["field"] for e in body["errors"]] == ["events[0].ts", "events[1].ts", "events[2].ts"]
    ok = _event("k", "impression", "c-1", "broadband-bundle") | {"ts": "2026-11-23T11:00:00+01:00"}
    assert (await send_events(client, [ok]))["accepted"] == 1


async def _events_count(client: Client, action: str) -> dict[str, int]:
    await learn(client)
    body = await (await client.get("/v1/actions/stats")).json()
    events: dict[str, int] = next(a for a in body["actions"] if a["action_id"] == action)["events"]
    return events


async def test_the_event_tally_counts_each_event_id_once_however_often_it_is_sent(client: Client, redis: Redis) -> None:
    """Events without a decision were counted again at every re-send (200 ids sent 4 times gave 800)."""
    batch = [_event(f"r{i}", "click", f"c-{i % 7}", "tv-addon") for i in range(200)]
    for _ in range(4):
        await send_events(client, batch)
        await learn(client)
    twice = [_event("same", "accept", "c-1", "tv-addon"), _event("same", "accept", "c-1", "tv-addon")]
    await send_events(client, twice)
    await send_events(client, twice)  # re-sent before the learner ran
    assert await _events_count(client, "tv-addon") == {"click": 200, "accept": 1}
    for i in range(7):  # the marks are gone once counted and committed
        assert await redis.hget(keys.customer(f"c-{i}"), keys.Field.TALLY) is None


async def test_late_answers_are_counted_once_too(make_client: AppFactory) -> None:
    clock = Clock()
    client: Client = await make_client(clock=clock)
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    d = await decide(client, "c-1")
    action = d["actions"][0]["action_id"]
    clock.now += 8 * 86400  # past the attribution window of the web channel
    for _ in range(3):
        result = await send_events(client, [_event("late-1", "accept", "c-1", action, d["decision_id"])])
        await learn(client)
    assert result["duplicates"] == 1
    assert (await _events_count(client, action)).get("accept") == 1


async def test_a_replayed_batch_counts_once_and_a_crash_before_clearing_marks_does_not_recount(
    client: Client, redis: Redis
) -> None:
    lr = learner(client)
    await send_events(client, [_event("m1", "click", "c-1", "tv-addon"), _event("m2", "click", "c-1", "tv-addon")])
    batch = await lr.store.read_inbox({}, 100)
    assert batch.last
    rewards = {("web", "click"): 0.2}
    first = await lr.store.credit_events(batch.entries, rewards, {})
    replay = await lr.store.credit_events(batch.entries, rewards, {})  # a learner died before committing
    assert [g.counted for g in first] == [g.counted for g in replay] == [True, True]
    # the next learner commits but dies before clearing the marks; then the channel re-sends
    assert await lr.store.take_lease(lr.token, lr.lease_ms)
    commit = LearningCommit(batch.last, [(Tally.EVENTS, "tv-addon:click", 2.0)], {}, "")
    assert await lr.store.commit_learning(lr.token, lr.lease_ms, commit)
    await send_events(client, [_event("m1", "click", "c-1", "tv-addon")])
    resent = await lr.store.read_inbox(batch.last, 100)
    again = await lr.store.credit_events(resent.entries, rewards, batch.last)
    assert [g.counted for g in again] == [False]
    assert await redis.hget(keys.customer("c-1"), keys.Field.TALLY) is None  # the committed marks went with it
