"""The learner and what it feeds: the contextual model, the control group and its lift, over real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
from redis.asyncio import Redis

from nba.decision.rank import control_bucket
from nba.http.routes import STORE
from nba.learning.features import encode
from nba.learning.snapshot import build_snapshot
from nba.rules.load import load_rulebook
from nba.store import keys
from nba.store.redis import INBOX_WAIT_MAX
from tests.api.helpers import CROSSSELL_MOBILE, Client, decide, put_customer, send_events
from tests.conftest import AppFactory, learn, learner, live

CONTEXTUAL = """  channels:
    web: {model: contextual}
    call_center: {exploration: 0}
  contextual:
    features:
      - {attribute: plan, one_hot: [basic, medium, large, unlimited]}
      - {attribute: monthly_spend, buckets: [30, 60]}
      - {context: device, one_hot: [mobile, desktop]}
"""


def _with_learning(rules: Path, extra: str) -> Path:
    policy = rules / "policy.yaml"
    policy.write_text(policy.read_text().replace("  refresh_seconds: 1.0\n", "  refresh_seconds: 1.0\n" + extra))
    return rules


async def test_contextual_decisions_train_the_contextual_model(
    make_client: AppFactory, rules_copy: Path, redis: Redis
) -> None:
    client: Client = await make_client(load_rulebook(_with_learning(rules_copy, CONTEXTUAL)))
    target = "broadband-bundle"
    shown_target = 0
    for i in range(60):
        cid = f"c-{i}"
        await put_customer(client, cid, CROSSSELL_MOBILE)
        d = await decide(client, cid, "web", context={"device": "mobile"})
        events = [
            {
                "event_id": f"{cid}-i-{a['action_id']}",
                "type": "impression",
                "customer_id": cid,
                "action_id": a["action_id"],
                "decision_id": d["decision_id"],
                "channel": "web",
            }
            for a in d["actions"]
        ]
        if any(a["action_id"] == target for a in d["actions"]):
            shown_target += 1
            events.append(
                {
                    "event_id": f"{cid}-a",
                    "type": "accept",
                    "customer_id": cid,
                    "action_id": target,
                    "decision_id": d["decision_id"],
                    "channel": "web",
                }
            )
        if events:
            await send_events(client, events)
    assert shown_target > 5
    assert await learn(client)
    rows = await redis.hgetall(keys.MODEL_CONTEXTUAL)
    space = live(client).snapshot.rulebook.learning.features
    assert rows[b"signature"] == space.signature.encode()
    snap = live(client).snapshot
    i = snap.rulebook.action_index[target]
    x = encode(space, CROSSSELL_MOBILE, {"device": "mobile"}, set())
    mean, sd = snap.contextual.score(x, np.array([i]))
    assert mean[0] > 0.5, mean  # always accepted by such customers (prior: 5%)
    assert sd[0] < 0.2, sd
    # the exploration-free call-center channel logs probability 1 for what it shows
    await put_customer(client, "cc-1", CROSSSELL_MOBILE)
    cc = await decide(client, "cc-1", "call_center")
    assert all(a["probability"] == 1.0 for a in cc["actions"])


async def test_control_group_gets_random_orders_and_stats_show_the_lift(
    make_client: AppFactory, rules_copy: Path, redis: Redis
) -> None:
    client: Client = await make_client(load_rulebook(_with_learning(rules_copy, "  control: {share: 0.5}\n")))
    arms: dict[str, int] = {"model": 0, "control": 0}
    for i in range(40):
        cid = f"c-{i}"
        await put_customer(client, cid, CROSSSELL_MOBILE)
        d = await decide(client, cid, "web")
        raw = await redis.hget(keys.decision(cid, d["decision_id"]), "rec")
        assert isinstance(raw, bytes)
        arm = orjson.loads(raw)["arm"]
        assert arm == ("control" if control_bucket(cid) < 0.5 else "model")
        if not d["actions"]:  # the model's do-nothing threshold won (about 2.5% of these decisions)
            assert arm == "model"
            continue
        arms[arm] += 1
        if arm == "control":
            m = len(orjson.loads(raw)["eligible"]) - 1  # the do-nothing threshold is not drawn from
            assert all(abs(a["probability"] - 1 / m) < 1e-12 for a in d["actions"])
        first = d["actions"][0]["action_id"]
        await send_events(
            client,
            [
                {
                    "event_id": f"{cid}-i",
                    "type": "impression",
                    "customer_id": cid,
                    "action_id": first,
                    "decision_id": d["decision_id"],
                    "channel": "web",
                },
                {
                    "event_id": f"{cid}-a",
                    "type": "accept" if arm == "model" or i % 4 == 0 else "reject",
                    "customer_id": cid,
                    "action_id": first,
                    "decision_id": d["decision_id"],
                    "channel": "web",
                },
            ],
        )
    assert min(arms.values()) > 5
    await learn(client)
    body = await (await client.get("/v1/actions/stats")).json()
    control = body["control"]
    assert control["share"] == 0.5
    assert control["arms"]["model"]["shown"] == arms["model"]
    assert control["arms"]["model"]["rate"] == 1.0
    assert control["arms"]["control"]["shown"] == arms["control"]
    assert control["lift"]["difference"] > 0
    metrics = await (await client.get("/metrics")).text()
    assert f'nba_arm_shown{{arm="model"}} {float(arms["model"])}' in metrics


async def test_the_idle_learner_waits_for_the_inbox_and_picks_an_event_up_as_it_arrives(
    make_client: AppFactory, redis: Redis
) -> None:
    client: Client = await make_client()
    app = client.app
    assert app is not None
    store = app[STORE]
    last: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrevrange(  # type: ignore[assignment]
        keys.LEARN_INBOX, count=1
    )
    position = {0: last[0][0].decode() if last else "0"}
    # nothing after the position: the wait ends empty-handed, after its time and not before
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await store.wait_inbox(position, 0.3) is False
    assert loop.time() - start >= 0.25
    # a wait longer than one blocking read may last is several reads, not cut short to one
    start = loop.time()
    assert await store.wait_inbox(position, INBOX_WAIT_MAX + 0.5) is False
    assert loop.time() - start >= INBOX_WAIT_MAX + 0.45
    # an entry that arrives during the wait ends it at once, however long the setup before it takes
    waiting = asyncio.ensure_future(store.wait_inbox(position, 30))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await put_customer(client, "c-wait", CROSSSELL_MOBILE)
    d = await decide(client, "c-wait")
    await send_events(
        client,
        [
            {
                "event_id": "c-wait-i",
                "type": "impression",
                "customer_id": "c-wait",
                "action_id": d["actions"][0]["action_id"],
                "decision_id": d["decision_id"],
                "channel": "web",
            }
        ],
    )
    assert await asyncio.wait_for(waiting, 10) is True
    # and the learner's own loop, waiting the same way, applies it without being asked
    version = await store.model_version()
    task = asyncio.ensure_future(learner(client).run())
    try:
        for _ in range(200):
            if await store.model_version() != version:
                break
            await asyncio.sleep(0.05)
        assert await store.model_version() != version
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _show_and_accept(client: Client, cid: str) -> None:
    await put_customer(client, cid, CROSSSELL_MOBILE)
    d = await decide(client, cid, "web", context={"device": "mobile"})
    assert d["actions"]
    first = d["actions"][0]["action_id"]
    base = {"customer_id": cid, "action_id": first, "decision_id": d["decision_id"], "channel": "web"}
    await send_events(
        client,
        [{**base, "event_id": f"{cid}-i", "type": "impression"}, {**base, "event_id": f"{cid}-a", "type": "accept"}],
    )


async def test_with_a_half_life_answers_count_less_as_they_age_and_a_rebase_keeps_the_model(
    make_client: AppFactory, rules_copy: Path
) -> None:
    client: Client = await make_client(load_rulebook(_with_learning(rules_copy, CONTEXTUAL + "  half_life: 1h\n")))
    for i in range(12):
        await _show_and_accept(client, f"c-{i}")
    assert await learn(client)
    app = client.app
    assert app is not None
    store = app[STORE]
    data = await store.model_data()
    assert data.half_life == 3600.0
    assert abs(data.landmark - time.time()) < 60  # the first batch set the units: nothing was learned before
    rb = live(client).snapshot.rulebook
    fresh = build_snapshot(rb, data, now=data.landmark)
    assert fresh.model.trials.sum() == pytest.approx(12, rel=0.01)
    # an hour later every answer is worth half (the reader's clock moves in steps of 1/64 half-life)
    later = build_snapshot(rb, data, now=data.landmark + 3600)
    np.testing.assert_allclose(later.model.trials, fresh.model.trials / 2, rtol=0.011)
    assert not np.allclose(later.contextual.cov, fresh.contextual.cov)  # less data, wider beliefs
    stats = await (await client.get("/v1/actions/stats")).json()
    assert stats["half_life_seconds"] == 3600.0
    # 40 half-lives on, the learner rewrites the statistics against a new landmark: the same model
    far = data.landmark + 40 * 3600
    learner(client).clock = lambda: far
    await _show_and_accept(client, "c-last")
    assert await learn(client)
    rebased = await store.model_data()
    assert rebased.landmark == far
    before = build_snapshot(rb, data, now=far)
    after = build_snapshot(rb, rebased, now=far)
    np.testing.assert_allclose(after.model.trials, before.model.trials, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(after.contextual.mean, before.contextual.mean, rtol=1e-6, atol=1e-9)


async def test_without_a_half_life_nothing_is_forgotten(make_client: AppFactory, rules_copy: Path) -> None:
    client: Client = await make_client(load_rulebook(rules_copy))
    for i in range(5):
        await _show_and_accept(client, f"c-{i}")
    assert await learn(client)
    app = client.app
    assert app is not None
    data = await app[STORE].model_data()
    assert (data.landmark, data.half_life) == (0.0, 0.0)
    rb = live(client).snapshot.rulebook
    years_later = build_snapshot(rb, data, now=time.time() + 3e7)
    assert years_later.model.trials.sum() == 5.0
