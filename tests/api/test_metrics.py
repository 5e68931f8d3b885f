"""What /metrics tells operators and the business: per-action counters that add up to what happened,
base units, no noise."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from nba.decision.rank import control_bucket
from nba.http.routes import LIVE
from tests.api.helpers import CROSSSELL_MOBILE, Client, decide, put_customer, send_events
from tests.conftest import AppFactory, learn

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: Client) -> Samples:
    resp = await client.get("/metrics")
    assert resp.status == 200
    out: Samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def test_per_action_counters_follow_decisions_events_and_credits(make_client: AppFactory) -> None:
    client = await make_client()
    rb = client.app[LIVE].snapshot.rulebook
    control = rb.learning.control
    shown: dict[str, str] = {}  # action -> arm of the decision that showed it
    decisions = []
    for i in range(6):
        cid = f"c-{i}"
        await put_customer(client, cid, CROSSSELL_MOBILE)
        d = await decide(client, cid, "web")
        arm = "control" if control is not None and control.includes(control_bucket(cid)) else "model"
        decisions.append((cid, d, arm))
    before = await scrape(client)
    proposed = 0
    for _, d, arm in decisions:
        for a in d["actions"]:
            proposed += 1
            shown.setdefault(a["action_id"], arm)
    assert proposed > 0
    assert total(before, "nba_action_proposals_total", channel="web") == proposed
    for _, d, arm in decisions:
        for a in d["actions"]:
            assert value(before, "nba_action_proposals_total", action=a["action_id"], channel="web", arm=arm) >= 1

    # an impression and an accept of each decision's first action; sent twice (a retry): counted once
    events = []
    for cid, d, _ in decisions:
        if d["actions"]:
            a = d["actions"][0]["action_id"]
            for etype in ("impression", "accept"):
                events.append(
                    {
                        "event_id": f"{cid}-{etype}",
                        "type": etype,
                        "customer_id": cid,
                        "action_id": a,
                        "decision_id": d["decision_id"],
                        "channel": "web",
                    }
                )
    await send_events(client, events)
    await send_events(client, events)
    await learn(client)
    after = await scrape(client)
    answered = len(events) // 2
    assert total(after, "nba_action_events_total", channel="web", type="impression") == answered
    assert total(after, "nba_action_events_total", channel="web", type="accept") == answered
    assert total(after, "nba_action_trials_total", channel="web") == answered
    assert total(after, "nba_action_rewards_total", channel="web") == answered  # accept's reward on web: 1.0
    by_id = {a.id: a for a in rb.actions}
    earned = sum(by_id[d["actions"][0]["action_id"]].value for _, d, _ in decisions if d["actions"])
    assert abs(total(after, "nba_action_value_total", channel="web") - earned) < 1e-9
    for _, d, arm in decisions:
        if d["actions"]:
            a = d["actions"][0]["action_id"]
            assert value(after, "nba_action_trials_total", action=a, channel="web", arm=arm) >= 1
    assert value(after, "nba_learner_lag_seconds") == 0.0  # drained: nothing waits


async def test_exposition_is_in_base_units_without_created_series(client: Client) -> None:
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    await decide(client, "c-1")
    text = await (await client.get("/metrics")).text()
    assert "_created" not in text
    assert "_ms" not in text  # every duration is in seconds
    samples = await scrape(client)
    assert value(samples, "nba_decision_duration_seconds_count", channel="web") == 1
    # one decide took well under a second: its sum is in seconds, not milliseconds
    assert 0 < value(samples, "nba_decision_duration_seconds_sum", channel="web") < 1
    assert value(samples, "nba_http_request_duration_seconds_count", route="/v1/decide") == 1
    assert value(samples, "nba_redis_up") == 1
    assert total(samples, "nba_rules_info") == 1
