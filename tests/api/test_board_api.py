"""The board's data: offer performance from the learner's hourly counters, learning health, and the rule
versions with their changes and diffs, over real Redis."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from nba.decision.rank import control_bucket
from nba.rules.load import load_rulebook
from nba.store import keys
from tests.api.helpers import CROSSSELL_MOBILE, Client, decide, problem, put_customer, send_events
from tests.conftest import AppFactory, Clock, learn

HOUR = 3600
# The counters expire on Redis's own clock, after their day plus keys.PERF_HOUR_DAYS: counted at the tests'
# fixed NOW, they would be gone once that lies more than a week in the past. So these tests run at the
# middle of the current hour.
NOW = time.time() // HOUR * HOUR + HOUR / 2


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def _event(
    eid: str, etype: str, cid: str, d: dict[str, Any], channel: str = "web", ts: float | None = None
) -> dict[str, Any]:
    e = {
        "event_id": eid,
        "type": etype,
        "customer_id": cid,
        "action_id": d["actions"][0]["action_id"],
        "decision_id": d["decision_id"],
        "channel": channel,
    }
    if ts is not None:
        e["ts"] = _iso(ts)
    return e


async def _performance(client: Client, **query: str) -> dict[str, Any]:
    resp = await client.get("/v1/board/performance", params=query)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def _row(body: dict[str, Any], action: str, channel: str) -> dict[str, Any]:
    row: dict[str, Any] = next(r for r in body["rows"] if r["action_id"] == action and r["channel"] == channel)
    return row


async def test_each_event_counts_once_in_its_hour_channel_and_arm(make_client: AppFactory, rules_copy: Path) -> None:
    policy = rules_copy / "policy.yaml"
    policy.write_text(
        policy.read_text().replace("  refresh_seconds: 1.0\n", "  refresh_seconds: 1.0\n  control: {share: 0.5}\n")
    )
    client: Client = await make_client(load_rulebook(rules_copy), clock=Clock(NOW))
    by_arm: dict[str, list[str]] = {"model": [], "control": []}
    for i in range(12):
        cid = f"c-{i}"
        by_arm["control" if control_bucket(cid) < 0.5 else "model"].append(cid)
    assert by_arm["model"]
    assert by_arm["control"]
    decisions: dict[str, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    for cid in by_arm["model"][:3] + by_arm["control"][:3]:
        await put_customer(client, cid, CROSSSELL_MOBILE)
        d = decisions[cid] = await decide(client, cid, "web", limit=1)
        if not d["actions"]:
            continue
        events += [_event(f"{cid}-i", "impression", cid, d), _event(f"{cid}-i", "impression", cid, d)]  # a repeat
    model_cid, control_cid = by_arm["model"][0], by_arm["control"][0]
    # an accept two hours earlier than the impressions (a late-reported answer keeps its own hour), on
    # the app: it counts for the web decision it answers
    events.append(_event("m-a", "accept", model_cid, decisions[model_cid], "app", NOW - 2 * HOUR))
    events.append(_event("c-r", "reject", control_cid, decisions[control_cid]))
    events.append(_event("m-c", "click", model_cid, decisions[model_cid]))  # rewarded 0.2, worth nothing
    assert (await send_events(client, events))["duplicates"] == len(
        [e for e in events if e["type"] == "impression"]
    ) // 2
    await learn(client)
    await send_events(client, events)  # sent again: nothing more is counted
    await learn(client)

    body = await _performance(client)
    assert body["bucket"] == "hour"
    assert len(body["buckets"]) == 48
    assert body["until"] == _iso((NOW // HOUR + 1) * HOUR)
    shown = sum(1 for d in decisions.values() if d["actions"])
    assert body["totals"]["shown"] == shown
    assert body["totals"]["accepted"] == 1
    assert body["totals"]["rejected"] == 1
    accepted_action = decisions[model_cid]["actions"][0]["action_id"]
    row = _row(body, accepted_action, "web")
    assert row["accepted"] == 1
    values = {a.id: a.value for a in load_rulebook(rules_copy).actions}
    assert row["value"] == pytest.approx(values[accepted_action])  # the accept's; a click adds nothing
    now_bucket = body["buckets"].index(_iso(NOW // HOUR * HOUR))
    assert row["series"]["accepted"][now_bucket - 2] == 1  # the accept's own hour
    assert sum(row["series"]["shown"]) == row["shown"]
    assert body["totals"]["model"]["accepted"] == 1
    assert body["totals"]["control"]["accepted"] == 0
    assert body["totals"]["model"]["shown"] + body["totals"]["control"]["shown"] == shown
    assert not [r for r in body["rows"] if r["channel"] == "app"]

    by_day = await _performance(client, bucket="day")
    assert len(by_day["buckets"]) == 14
    assert {k: by_day["totals"][k] for k in ("shown", "accepted", "rejected", "value")} == {
        k: body["totals"][k] for k in ("shown", "accepted", "rejected", "value")
    }
    assert (await _performance(client, channel="email"))["rows"] == []
    earlier = await _performance(client, **{"from": _iso(NOW - 10 * HOUR), "until": _iso(NOW - HOUR)})
    assert len(earlier["buckets"]) == 10  # widened to whole hours at both ends
    assert earlier["totals"]["accepted"] == 1
    assert earlier["totals"]["shown"] == 0


async def test_an_answer_to_no_decision_counts_on_its_own_channel_without_an_arm(make_client: AppFactory) -> None:
    client: Client = await make_client(clock=Clock(NOW))
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    await send_events(
        client,
        [{"event_id": "x", "type": "impression", "customer_id": "c-1", "action_id": "tv-addon", "channel": "app"}],
    )
    await learn(client)
    row = _row(await _performance(client), "tv-addon", "app")
    assert row["shown"] == 1
    assert row["model"]["shown"] == 0
    assert row["control"]["shown"] == 0
    assert row["rate"] == 0
    assert row["rate_low"] == 0
    assert row["model"]["rate"] is None
    assert row["lift"] is None


async def test_counters_expire_after_their_retention(make_client: AppFactory, redis: Redis) -> None:
    client: Client = await make_client(clock=Clock(NOW))
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    d = await decide(client, "c-1", "web", limit=1)
    await send_events(client, [_event("i", "impression", "c-1", d)])
    await learn(client)
    day = dt.datetime.fromtimestamp(NOW, dt.UTC)
    hours, days = keys.perf_hours(day.strftime("%Y-%m-%d")), keys.perf_days(day.strftime("%Y-%m"))
    day_end = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(days=1)
    assert await redis.pexpiretime(hours) == int((day_end + dt.timedelta(days=keys.PERF_HOUR_DAYS)).timestamp() * 1000)
    month_end = dt.datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=dt.UTC)
    assert await redis.pexpiretime(days) == int((month_end + dt.timedelta(days=keys.PERF_DAY_DAYS)).timestamp() * 1000)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"bucket": "week"}, "bucket"),
        ({"channel": "fax"}, "channel"),
        ({"from": "yesterday"}, "from"),
        ({"until": "2026-11-23T12:00:00"}, "until"),
        ({"from": "2026-11-24T00:00:00Z", "until": "2026-11-23T00:00:00Z"}, "from"),
        ({"from": "2026-10-01T00:00:00Z"}, "from"),
        ({"limit": "3"}, "limit"),
    ],
)
async def test_a_bad_performance_query_names_its_field(client: Client, query: dict[str, str], field: str) -> None:
    resp = await client.get("/v1/board/performance", params=query)
    body = await problem(resp, 400)
    assert field in {e["field"] for e in body["errors"]}


async def test_learning_health_shows_what_waits_and_when_the_model_moved(make_client: AppFactory) -> None:
    client: Client = await make_client(clock=Clock(NOW))
    await put_customer(client, "c-1", CROSSSELL_MOBILE)
    d = await decide(client, "c-1", "web", limit=1)
    await send_events(client, [_event("i", "impression", "c-1", d)])
    before = await (await client.get("/v1/board/learning")).json()
    assert before["inbox_pending"] == 1
    assert before["learner_lag_seconds"] >= 0
    await learn(client)
    after = await (await client.get("/v1/board/learning")).json()
    assert after["inbox_pending"] == 0
    assert after["learner_lag_seconds"] == 0
    assert after["model_updated_at"] is not None
    assert int(after["model_version"]) > 0
    assert after["decisions"] >= 1
    assert after["degraded_share"] == 0


def _edit(rules: Path, value: int) -> None:
    tv = rules / "actions" / "tv-addon.yaml"
    tv.write_text(re.sub(r"(?m)^value: \d+", f"value: {value}", tv.read_text()))


async def test_rule_versions_list_their_changes_and_diff_readably(make_client: AppFactory, rules_copy: Path) -> None:
    client: Client = await make_client(rules_dir=rules_copy, clock=Clock(NOW))
    v1 = (await (await client.get("/v1/rules/versions")).json())["current"]
    _edit(rules_copy, 16)
    v2 = (await (await client.post("/v1/rules/reload")).json())["version"]
    assert v2 != v1
    versions = await (await client.get("/v1/rules/versions")).json()
    assert [v["version"] for v in versions["versions"]][:2] == [v2, v1]
    assert versions["versions"][0]["current"]
    assert versions["versions"][0]["published_at"]
    assert versions["changes"][0]["version"] == v2
    assert versions["changes"][0]["previous"] == v1
    assert versions["changes"][0]["kind"] == "publish"

    diff = await (await client.get("/v1/rules/diff", params={"from": v1, "to": v2})).json()
    assert [(f["path"], f["status"]) for f in diff["files"]] == [("actions/tv-addon.yaml", "changed")]
    text = diff["files"][0]["diff"]
    assert "\n-value: 15" in text
    assert "\n+value: 16" in text
    assert text.startswith("--- a/actions/tv-addon.yaml")

    assert (await (await client.post("/v1/rules/rollback")).json())["version"] == v1
    after = await (await client.get("/v1/rules/versions")).json()
    assert after["current"] == v1
    assert next(v["version"] for v in after["versions"]) == v1
    assert after["changes"][0] == {**after["changes"][0], "version": v1, "kind": "rollback", "previous": v2}
    # v2 fell off the history with the rollback: it is no longer kept
    gone = await problem(await client.get("/v1/rules/diff", params={"from": v1, "to": v2}), 404)
    assert gone["code"] == "unknown_version"
    assert gone["errors"][0]["field"] == "to"
    missing = await problem(await client.get("/v1/rules/diff", params={"from": v1}), 400)
    assert missing["errors"][0]["field"] == "to"
