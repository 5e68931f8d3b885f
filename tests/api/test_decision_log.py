"""The decision log: every decision recorded with what offline evaluation needs, exported whole."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from nba.cli import log_export
from nba.settings import Settings
from tests.api.helpers import CROSSSELL_MOBILE, Client, decide, put_customer, send_events
from tests.conftest import learn


async def test_export_has_every_decision_with_probabilities_and_rewards(
    client: Client, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decisions = []
    for cid in ("c-1", "c-2"):
        await put_customer(client, cid, CROSSSELL_MOBILE)
        decisions.append(await decide(client, cid, "web", context={"device": "mobile"}, contact_id="v-1"))
    d = decisions[0]
    first = d["actions"][0]["action_id"]
    await send_events(
        client,
        [
            {
                "event_id": "x",
                "type": "accept",
                "customer_id": "c-1",
                "action_id": first,
                "decision_id": d["decision_id"],
                "channel": "call_center",
            }
        ],
    )
    await learn(client)
    monkeypatch.setenv("NBA_REDIS_URL", redis_url)
    out = tmp_path / "log.jsonl"
    assert await log_export(Settings.from_env(), out) == 0
    records = {r["decision_id"]: r for r in map(orjson.loads, out.read_bytes().splitlines())}
    assert set(records) == {x["decision_id"] for x in decisions}
    rec = records[d["decision_id"]]
    assert rec["customer_id"] == "c-1"
    assert rec["channel"] == "web"
    assert rec["contact_id"] == "v-1"
    assert rec["context"] == {"device": "mobile"}
    assert rec["segments"] == d["segments"]
    assert rec["rules_version"] == d["rules_version"]
    assert rec["model_version"] == d["model_version"]
    assert rec["segment_key"] == "mid_value"
    assert first in rec["eligible"]
    assert [(a["action_id"], a["probability"], a["propensity"]) for a in rec["actions"]] == [
        (a["action_id"], a["probability"], a["propensity"]) for a in d["actions"]
    ]
    assert rec["probability_kind"] == "integrated"
    assert rec["rewards"] == {first: 1.0}
