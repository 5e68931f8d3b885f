"""Outbound runs against a real Redis, through the HTTP job API and the command line: capacities, volumes
and budgets are never exceeded, consent and contact caps hold as in decide, the choice is never worse
than first-come, a dry run leaves no trace, a real run's decisions are credited by an answer on another
channel, and its capacity price reaches real-time decisions."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from redis.asyncio import Redis

from nba.access.apikeys import KeyRequest
from nba.access.service import OPEN
from nba.customers.demo import demo_population
from nba.http import routes
from nba.http.access import ACCESS
from nba.outbound.run import OutboundRun, RunRequest
from nba.rules.load import load_rulebook
from tests.api.helpers import Client, problem, put_customer, send_events
from tests.conftest import NOW, AppFactory, Clock, learn
from tests.serving import nba

DAY = 86400


def _rules(
    rules_copy: Path, channels: dict[str, dict[str, Any]], actions: dict[str, dict[str, Any]] | None = None
) -> Path:
    """The tests' rules with capacities on channels and volumes or costs on actions."""
    path = rules_copy / "channels.yaml"
    doc = yaml.safe_load(path.read_text())
    for name, extra in channels.items():
        doc["channels"][name].update(extra)
    path.write_text(yaml.safe_dump(doc))
    for action_id, extra in (actions or {}).items():
        apath = rules_copy / "actions" / f"{action_id}.yaml"
        adoc = yaml.safe_load(apath.read_text())
        adoc.update(extra)
        apath.write_text(yaml.safe_dump(adoc, allow_unicode=True))
    return rules_copy


async def _population(
    client: Client, n: int, *, email: bool | None = True, seed: int = 3, prefix: str = "c"
) -> list[str]:
    ids = []
    declared = client.app[routes.LIVE].snapshot.rulebook.attributes  # the tests' rules: not every demo one
    for demo_id, demo in demo_population(n, seed=seed):
        cid = demo_id.replace("c-", f"{prefix}-")
        attrs = {k: v for k, v in demo.items() if k in declared}
        if email is not None:
            attrs["consents"]["email"] = email
            attrs["email"] = f"{cid}@example.nl"
        await put_customer(client, cid, attrs)
        ids.append(cid)
    return ids


async def _run(client: Client, **body: Any) -> dict[str, Any]:
    """Start a run and wait for it to end (the wait guards against a hang; it measures nothing)."""
    resp = await client.post("/v1/outbound/runs", json=body)
    assert resp.status == 202, await resp.text()
    started = await resp.json()
    assert resp.headers["Location"] == f"/v1/outbound/runs/{started['run_id']}"
    for _ in range(2400):
        doc: dict[str, Any] = await (await client.get(resp.headers["Location"])).json()
        if doc["state"] != "running":
            return doc
        await asyncio.sleep(0.05)
    pytest.fail("the outbound run did not end within 120 s")


async def _selection(client: Client, run_id: str, query: str = "") -> list[dict[str, Any]]:
    resp = await client.get(f"/v1/outbound/runs/{run_id}/selection{query}")
    assert resp.status == 200, await resp.text()
    return [orjson.loads(line) for line in (await resp.read()).splitlines() if line]


async def test_a_real_run_keeps_every_capacity_and_beats_first_come(
    make_client: AppFactory, rules_copy: Path, redis: Redis
) -> None:
    rules = _rules(
        rules_copy,
        {"email": {"capacity": {"per_day": 40}}},
        {"broadband-bundle": {"volume": {"per_day": 5}}, "tv-addon": {"cost": 2.0}},
    )
    client = await make_client(load_rulebook(rules))
    await _population(client, 300)
    doc = await _run(client, channel="email", budget=20)
    assert doc["state"] == "done", doc
    report = doc["report"]
    caps = {c["name"]: c for c in report["capacities"]}
    assert set(caps) == {"channel email", "action broadband-bundle", "budget"}
    for cap in caps.values():
        assert cap["used"] <= cap["limit"], cap
    assert caps["channel email"]["used"] == 40
    assert caps["channel email"]["binding"]
    lines = await _selection(client, doc["run_id"], "?include=email")
    assert len(lines) == report["totals"]["selected"] == 40
    assert len({x["customer_id"] for x in lines}) == 40  # one e-mail per customer
    per_action: dict[str, int] = {}
    for x in lines:
        per_action[x["action_id"]] = per_action.get(x["action_id"], 0) + 1
        assert x["email"]
        assert x["decision_id"]
        assert x["send_at"] == report["send_at"]
    assert per_action.get("broadband-bundle", 0) <= 5
    assert 2.0 * per_action.get("tv-addon", 0) <= 20
    cmp = report["comparison"]
    assert cmp["chosen"]["score"] >= cmp["first_come"]["score"]
    assert cmp["chosen"]["score"] <= cmp["capacity_free"]["score"]
    assert 0 < cmp["share_of_upper_bound"] <= 1
    assert report["customers"]["cut_by_capacity"] > 0
    assert report["not_chosen_examples"]
    assert all(e["why"].startswith("not chosen: ") for e in report["not_chosen_examples"])
    # each line is a recorded decision that names its run; the day's capacity is used up
    store = client.app[routes.STORE]
    records = await store.decision_records(lines[0]["customer_id"])
    assert [r["outbound_run"] for r in records] == [doc["run_id"]]
    assert records[0]["actions"][0]["probability"] == 1.0
    assert (await store.outbound_used("email", report["day"]))["*"] == 40
    # CSV for lead management: a header, then the same lines
    resp = await client.get(f"/v1/outbound/runs/{doc['run_id']}/selection?format=csv&include=email")
    rows = list(csv.reader(io.StringIO(await resp.text())))
    assert rows[0][:3] == ["run_id", "decision_id", "customer_id"]
    assert rows[0][-1] == "email"
    assert len(rows) == 41
    # the next run that day has what is left: nothing
    again = await _run(client, channel="email")
    assert again["report"]["capacities"][0]["limit"] == 0
    assert again["report"]["totals"]["selected"] == 0


async def test_consent_and_contact_caps_hold_as_in_decide(make_client: AppFactory, rules_copy: Path) -> None:
    client = await make_client(load_rulebook(_rules(rules_copy, {"email": {"capacity": {"per_day": 1000}}})))
    refused = await _population(client, 20, email=False, seed=1, prefix="no")
    agreed = await _population(client, 40, email=True, seed=2, prefix="yes")
    # policy.yaml: at most one e-mail a week; five customers had one two days ago
    capped = agreed[:5]
    await send_events(
        client,
        [
            {
                "event_id": f"e-{cid}",
                "type": "impression",
                "customer_id": cid,
                "action_id": "tv-addon",
                "channel": "email",
                "ts": "2026-11-21T12:00:00Z",
            }
            for cid in capped
        ],
    )
    doc = await _run(client, channel="email")
    chosen = {x["customer_id"] for x in await _selection(client, doc["run_id"])}
    assert chosen
    assert not chosen & set(refused)
    assert not chosen & set(capped)
    assert doc["report"]["population"]["channel_closed"] == {"no email consent for the email channel": 20}
    # the selection holds the weekly cap until it is sent: a second run the same day chooses nobody again
    second = await _run(client, channel="email")
    assert second["report"]["totals"]["selected"] == 0
    assert second["report"]["capacities"][0]["limit"] == 1000 - len(chosen)


async def test_a_dry_run_reports_and_leaves_no_trace(make_client: AppFactory, rules_copy: Path, redis: Redis) -> None:
    client = await make_client(
        load_rulebook(_rules(rules_copy, {"call_center": {"capacity": {"per_day": 3, "real_time": True}}}))
    )
    await _population(client, 30)
    before = {k: await redis.dump(k) for k in await redis.keys("*")}
    doc = await _run(client, channel="call_center", dry_run=True)
    assert doc["state"] == "done"
    assert doc["report"]["dry_run"] is True
    lines = await _selection(client, doc["run_id"])
    assert len(lines) == 3
    assert all(x["decision_id"] is None for x in lines)
    after = {k: await redis.dump(k) for k in await redis.keys("*")}
    # only the run's own document, its selection and the list of runs are new
    new = {k.decode() if isinstance(k, bytes) else k for k in set(after) - set(before)}
    assert new == {
        f"nba:{{outbound}}:run:{doc['run_id']}",
        f"nba:{{outbound}}:run:{doc['run_id']}:selection",
        "nba:{outbound}:runs",
    }
    assert all(after[k] == v for k, v in before.items())
    # and a real run on the same data chooses the same
    real = await _run(client, channel="call_center")
    assert sorted((x["customer_id"], x["action_id"]) for x in await _selection(client, real["run_id"])) == sorted(
        (x["customer_id"], x["action_id"]) for x in lines
    )


async def test_quiet_hours_move_the_send_time_and_its_day(make_client: AppFactory, rules_copy: Path) -> None:
    # 22:30 in Amsterdam (UTC+1): e-mail is quiet until 08:00, the next day
    clock = Clock(NOW + 9.5 * 3600)
    client = await make_client(load_rulebook(_rules(rules_copy, {"email": {"capacity": {"per_day": 10}}})), clock=clock)
    await _population(client, 20)
    doc = await _run(client, channel="email")
    assert doc["report"]["send_at"] == "2026-11-24T07:00:00Z"
    assert doc["report"]["day"] == "2026-11-24"
    later = await _run(client, channel="email", send_at="2026-11-25T10:00:00+01:00")
    assert later["report"]["send_at"] == "2026-11-25T09:00:00Z"


async def test_an_answer_on_another_channel_credits_the_outbound_decision(
    make_client: AppFactory, rules_copy: Path
) -> None:
    client = await make_client(load_rulebook(_rules(rules_copy, {"email": {"capacity": {"per_day": 5}}})))
    await _population(client, 30)
    doc = await _run(client, channel="email")
    line = (await _selection(client, doc["run_id"]))[0]
    # days later the customer accepts on the website, without naming the decision
    body = await send_events(
        client,
        [
            {
                "event_id": "accept-on-web",
                "type": "accept",
                "customer_id": line["customer_id"],
                "action_id": line["action_id"],
                "channel": "web",
            }
        ],
    )
    assert body["credited"] == 1, body
    await learn(client)
    store = client.app[routes.STORE]
    record = (await store.decision_records(line["customer_id"]))[0]
    assert record["decision_id"] == line["decision_id"]
    assert record["rewards"] == {line["action_id"]: 1.0}


async def test_the_capacity_price_raises_the_bar_of_real_time_decisions(
    make_client: AppFactory, rules_copy: Path
) -> None:
    rules = load_rulebook(_rules(rules_copy, {"call_center": {"capacity": {"per_day": 2, "real_time": True}}}))
    client = await make_client(rules)
    ids = await _population(client, 40)
    doc = await _run(client, channel="call_center")
    price = doc["report"]["capacities"][0]["price"]
    assert price > 0
    live = client.app[routes.LIVE]
    await live.refresh_prices()  # what each process does every second
    assert live.capacity_price("call_center", NOW) == pytest.approx(price)
    assert live.capacity_price("web", NOW) == 0.0
    assert live.capacity_price("call_center", NOW + 2 * DAY) == 0.0  # only for the day it was made for
    bar = float(rules.lever[rules.no_action][0]) + price
    shown = 0
    for cid in ids[10:]:
        resp = await client.post("/v1/decide", json={"customer_id": cid, "channel": "call_center", "explain": True})
        body = await resp.json()
        for a in body["actions"]:
            assert a["score"] > bar, (a, bar)  # nothing shown that does not beat the raised bar
            shown += 1
        threshold = next(x for x in body["explain"] if x["stage"] == "threshold")
        assert threshold["components"]["capacity_price"] == pytest.approx(price)
        assert "capacity price" in threshold["reason"]
    assert shown < 3 * 30  # the limit would have filled without the price


async def test_a_real_run_while_another_holds_the_lock_is_refused(make_client: AppFactory, rules_copy: Path) -> None:
    clock = Clock()
    client = await make_client(load_rulebook(_rules(rules_copy, {"email": {"capacity": {"per_day": 5}}})), clock=clock)
    await _population(client, 5)
    store = client.app[routes.STORE]
    assert await store.lock_outbound("another-process", 60_000)  # a run on any channel: volumes are shared
    resp = await client.post("/v1/outbound/runs", json={"channel": "email"})
    assert (await problem(resp, 409))["code"] == "run_in_progress"
    dry = await _run(client, channel="email", dry_run=True)  # a preview needs no lock
    assert dry["state"] == "done"
    await store.unlock_outbound("another-process")
    clock.now += 60
    real = await _run(client, channel="email")
    assert real["state"] == "done"
    listed = await (await client.get("/v1/outbound/runs")).json()
    assert [r["run_id"] for r in listed["runs"]] == [real["run_id"], dry["run_id"]]


async def test_a_run_that_dies_while_recording_keeps_its_plan_counted(
    make_client: AppFactory, rules_copy: Path
) -> None:
    client = await make_client(load_rulebook(_rules(rules_copy, {"call_center": {"capacity": {"per_day": 30}}})))
    await _population(client, 100)
    store, live = client.app[routes.STORE], client.app[routes.LIVE]

    async def dies(lines: list[dict[str, Any]]) -> None:
        raise RuntimeError("the process was killed")

    run = OutboundRun(store, lambda: live.snapshot, RunRequest("call_center"), clock=Clock(), seed=1)
    with pytest.raises(RuntimeError):
        await run.run(dies)
    # it may have recorded any part of its 30: the day counts all 30, so no later run goes past the capacity
    assert (await store.outbound_used("call_center", "2026-11-23"))["*"] == 30
    after = await _run(client, channel="call_center")
    assert after["report"]["capacities"][0]["limit"] == 0
    assert run.progress.phase == "failed"


async def test_an_actions_volume_holds_over_every_channel(make_client: AppFactory, rules_copy: Path) -> None:
    rules = _rules(
        rules_copy,
        {"call_center": {"capacity": {"per_day": 100}}, "app": {"capacity": {"per_day": 100}}},
        {"loyalty-gift": {"volume": {"per_day": 4}}},
    )
    client = await make_client(load_rulebook(rules))
    await _population(client, 200)
    gifts = 0
    for channel in ("call_center", "app"):
        doc = await _run(client, channel=channel)
        gifts += sum(x["action_id"] == "loyalty-gift" for x in await _selection(client, doc["run_id"]))
        volume = next(c for c in doc["report"]["capacities"] if c["name"] == "action loyalty-gift")
        assert volume["used"] <= volume["limit"]
    assert gifts == 4  # long-tenured customers want it on both channels; the gift shop sends 4 a day


async def test_profile_attributes_in_a_selection_need_customers_read(make_client: AppFactory, rules_copy: Path) -> None:
    client = await make_client(
        load_rulebook(_rules(rules_copy, {"email": {"capacity": {"per_day": 3}}})), open_without_keys=False
    )
    keys = {role: await _key(client, role) for role in ("admin", "marketer", "analyst", "crm")}
    for cid, attrs in demo_population(10, seed=4):
        attrs = {k: v for k, v in attrs.items() if k in client.app[routes.LIVE].snapshot.rulebook.attributes}
        attrs |= {"email": f"{cid}@example.nl", "consents": {**attrs["consents"], "email": True}}
        resp = await _as(client, "PUT", f"/v1/customers/{cid}", keys["admin"], {"attributes": attrs})
        assert resp.status == 200
    asked = await _as(client, "POST", "/v1/outbound/runs", keys["marketer"], {"channel": "email", "include": ["email"]})
    assert [e["field"] for e in (await problem(asked, 400))["errors"]] == ["include"]
    started = await _as(client, "POST", "/v1/outbound/runs", keys["marketer"], {"channel": "email"})
    run_id = (await started.json())["run_id"]
    for _ in range(2400):
        doc = await (await _as(client, "GET", f"/v1/outbound/runs/{run_id}", keys["marketer"])).json()
        if doc["state"] != "running":
            break
        await asyncio.sleep(0.05)
    url = f"/v1/outbound/runs/{run_id}/selection"
    for role in ("marketer", "analyst"):  # they read the selection, not the customers' data
        assert (await _as(client, "GET", url, keys[role])).status == 200
        assert (await problem(await _as(client, "GET", url + "?include=email", keys[role]), 403))["code"] == "forbidden"
    lines = (await (await _as(client, "GET", url + "?include=email", keys["crm"])).read()).splitlines()
    assert len(lines) == 3
    assert all(orjson.loads(x)["email"].endswith("@example.nl") for x in lines)
    unknown = await _as(client, "GET", url + "?include=password", keys["crm"])
    assert [e["field"] for e in (await problem(unknown, 400))["errors"]] == ["include"]


async def test_a_price_holds_on_its_own_day_only(make_client: AppFactory, rules_copy: Path) -> None:
    rules = load_rulebook(_rules(rules_copy, {"call_center": {"capacity": {"per_day": 2, "real_time": True}}}))
    client = await make_client(rules)
    await _population(client, 40)
    tomorrow = await _run(client, channel="call_center", send_at="2026-11-24T10:00:00Z")
    price = tomorrow["report"]["capacities"][0]["price"]
    assert price > 0
    live, store = client.app[routes.LIVE], client.app[routes.STORE]
    await live.refresh_prices()
    assert live.capacity_price("call_center", NOW) == 0.0  # today is not the day it was made for
    assert live.capacity_price("call_center", NOW + DAY) == pytest.approx(price)
    assert live.capacity_price("call_center", NOW + 2 * DAY) == 0.0
    # a damaged or impossible stored price is skipped, never applied
    await store.set_capacity_price("call_center", "2026-11-23", b'{"price": "inf", "from_ms": 0, "until_ms": 9e15}', 0)
    await live.refresh_prices()
    assert live.capacity_price("call_center", NOW) == 0.0


async def test_a_selection_holds_the_caps_to_the_end_of_its_day(make_client: AppFactory, rules_copy: Path) -> None:
    client = await make_client(load_rulebook(_rules(rules_copy, {"email": {"capacity": {"per_day": 1000}}})))
    await _population(client, 30)
    first = await _run(client, channel="email")  # sent at 13:00 in Amsterdam
    chosen = {x["customer_id"] for x in await _selection(client, first["run_id"])}
    assert chosen
    evening = await _run(client, channel="email", send_at="2026-11-23T20:00:00+01:00")
    assert not chosen & {x["customer_id"] for x in await _selection(client, evening["run_id"])}


async def test_a_run_over_nobody_reports_nothing_chosen(make_client: AppFactory, rules_copy: Path) -> None:
    client = await make_client(load_rulebook(_rules(rules_copy, {"email": {"capacity": {"per_day": 10}}})))
    doc = await _run(client, channel="email", customer_ids=["nobody-1", "nobody-2"])
    assert doc["state"] == "done", doc
    assert doc["report"]["totals"]["selected"] == 0
    assert doc["report"]["population"]["without_profile"] == 2
    everyone = await _run(client, channel="email", dry_run=True)  # an empty store
    assert everyone["report"]["customers"]["in_population"] == 0
    past = await _run(client, channel="email", dry_run=True, send_at="0001-01-01T00:00:00+14:00")
    assert past["report"]["send_at"] == "2026-11-23T12:00:00Z"  # a time already past means now


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": "fax"}, "channel"),
        ({"channel": "email", "segment": "nobody"}, "segment"),
        ({"channel": "email", "segment": "billing_contact"}, "segment"),  # needs a request's context
        ({"channel": "email", "segment": "high_value", "customer_ids": ["c-1"]}, "customer_ids"),
        ({"channel": "email", "customer_ids": ["c 1"]}, "customer_ids[0]"),
        ({"channel": "email", "per_customer": 2}, "per_customer"),
        ({"channel": "email", "budget": -1}, "budget"),
        ({"channel": "email", "send_at": "2026-11-25T10:00:00"}, "send_at"),
        ({"channel": "email", "send_at": "2036-11-25T10:00:00Z"}, "send_at"),
        ({"channel": "email", "include": ["email"]}, "include"),
        ({"channel": "email", "dry_run": "yes"}, "dry_run"),
        ({"channel": "email", "extra": 1}, "extra"),
    ],
)
async def test_a_run_that_cannot_be_made_is_refused_naming_the_field(
    client: Client, body: dict[str, Any], field: str
) -> None:
    resp = await client.post("/v1/outbound/runs", json=body)
    assert [e["field"] for e in (await problem(resp, 400))["errors"]] == [field]


async def test_unknown_runs_and_unfinished_selections_are_told(client: Client) -> None:
    assert (await problem(await client.get("/v1/outbound/runs/run-0123456789abcdef0123"), 404))["code"] == (
        "run_not_found"
    )
    assert (await problem(await client.get("/v1/outbound/runs/nope"), 400))["errors"][0]["field"] == "run_id"
    resp = await client.get("/v1/outbound/runs/run-0123456789abcdef0123/selection?format=xml")
    assert (await problem(resp, 400))["errors"][0]["field"] == "format"


def test_the_command_line_writes_the_selection_and_the_report(redis_url: str, tmp_path: Path, rules_copy: Path) -> None:
    rules = _rules(rules_copy, {"email": {"capacity": {"per_day": 7}}})
    env = {"NBA_REDIS_URL": redis_url, "NBA_RULES_DIR": str(rules), "NBA_DATA_DIR": str(tmp_path / "data")}
    people = tmp_path / "people.jsonl"
    declared = load_rulebook(rules).attributes
    people.write_text(
        "".join(
            json.dumps(
                {
                    "customer_id": cid,
                    "attributes": {
                        **{k: v for k, v in attrs.items() if k in declared},
                        "consents": {**attrs["consents"], "email": True},
                    },
                }
            )
            + "\n"
            for cid, attrs in demo_population(50, seed=9)
        )
    )
    assert nba("customers", "import", str(people), env=env).returncode == 0
    out, report = tmp_path / "list.csv", tmp_path / "report.json"
    done = nba(
        "outbound", "run", "--channel", "email", "--dry-run", "--out", str(out), "--report", str(report), env=env
    )
    assert done.returncode == 0, done.stderr
    assert "DRY RUN" in done.stderr
    assert "channel email: used 7 of 7" in done.stderr
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert len(rows) == 8
    assert rows[0][0] == "run_id"
    assert json.loads(report.read_text())["totals"]["selected"] == 7
    real = nba("outbound", "run", "--channel", "email", "--out", str(tmp_path / "list.jsonl"), env=env)
    assert real.returncode == 0, real.stderr
    lines = [json.loads(x) for x in (tmp_path / "list.jsonl").read_text().splitlines()]
    assert len(lines) == 7
    assert all(x["decision_id"] for x in lines)
    bad = nba("outbound", "run", "--channel", "fax", env=env)
    assert bad.returncode == 2
    assert "channel: unknown channel 'fax'" in bad.stderr


async def test_the_command_line_shows_how_far_a_run_got(capsys: pytest.CaptureFixture[str]) -> None:
    from nba.cli import _outbound_progress
    from nba.outbound.run import Progress

    progress = Progress(phase="recording", customers_read=1000, customers_recorded=7, to_record=35)
    ticker = asyncio.ensure_future(_outbound_progress(progress, every=0.001))
    await asyncio.sleep(0)  # the ticker starts its timer first: it is due before ours, so it has printed
    await asyncio.sleep(0.05)  # when we wake, however late that is
    assert "recording: 1000 customers read, 7 of 35 done" in capsys.readouterr().err
    progress.customers_recorded = 35
    await asyncio.sleep(0.05)
    assert "35 of 35 done" in capsys.readouterr().err
    ticker.cancel()


async def test_a_command_line_runs_selection_is_in_its_file(
    make_client: AppFactory, rules_copy: Path, redis_url: str, tmp_path: Path
) -> None:
    rules = _rules(rules_copy, {"email": {"capacity": {"per_day": 3}}})
    client = await make_client(load_rulebook(rules))
    await _population(client, 10)
    env = {"NBA_REDIS_URL": redis_url, "NBA_RULES_DIR": str(rules), "NBA_DATA_DIR": str(tmp_path / "data")}
    out = tmp_path / "today.jsonl"
    done = await asyncio.to_thread(nba, "outbound", "run", "--channel", "email", "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr
    [listed] = (await (await client.get("/v1/outbound/runs")).json())["runs"]
    assert listed["state"] == "done"
    assert listed["started_by"].startswith("cli:")
    resp = await client.get(f"/v1/outbound/runs/{listed['run_id']}/selection")
    assert (await problem(resp, 409))["code"] == "selection_in_file"
    assert len(out.read_text().splitlines()) == 3


async def _key(client: Client, role: str) -> str:
    """A key of `role`, made as `nba keys create` makes one."""
    req = KeyRequest(f"{role} key", role, ())
    _, secret = await client.app[ACCESS].create_key(req, ["web", "app", "call_center", "email"], OPEN)
    return secret


async def _as(client: Client, method: str, url: str, key: str, body: Any = None) -> Any:
    return await client.request(method, url, json=body, headers={"Authorization": f"Bearer {key}"})
