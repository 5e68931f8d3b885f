"""What makes two decide requests one (decision/repeats.py), the answer kept for a repeat, the request's
new fields and the channel's request_window."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest

from nba.decision import repeats
from nba.domain import DecideRequest, Decision, RankedAction
from nba.errors import InvalidRequest, RulesInvalid
from nba.http import wire
from nba.rules.load import load_rulebook
from nba.rules.rulebook import Rulebook

REQ = DecideRequest("c-1", "web", {"reason": "billing", "page": 2}, 3, False, None, request_id="view-1")


def test_a_repeat_is_the_same_channel_limit_context_contact_and_explain() -> None:
    fp = repeats.fingerprint(REQ)
    assert repeats.fingerprint(dataclasses.replace(REQ, context={"page": 2, "reason": "billing"})) == fp  # key order
    assert repeats.fingerprint(dataclasses.replace(REQ, customer_id="c-2", request_id="view-2")) == fp  # the key's
    for changed in (
        {"channel": "app"},
        {"limit": 2},
        {"context": {"reason": "moving", "page": 2}},
        {"contact_id": "call-1"},
        {"explain": True},
    ):
        assert repeats.fingerprint(dataclasses.replace(REQ, **changed)) != fp, changed


def test_the_kept_answer_gives_the_same_decision_back_marked_repeat() -> None:
    action = RankedAction("tv-addon", 1, "sales", 0.7, 0.05, 0.5, 10.0, {"title": "TV", "n": [1, 2]}, "because")
    d = Decision("d-1", "c-1", "web", [action], ["young"], "rv", "7", explain=[{"action_id": "tv-addon"}], ts=5.0)
    again = repeats.repeated(repeats.answer(d))
    assert again.repeat is True
    assert wire.decision_body(again) == {**wire.decision_body(d), "repeat": True}
    with pytest.raises(orjson.JSONDecodeError):
        repeats.repeated(b"not json")


def test_request_id_is_an_id(rulebook: Rulebook) -> None:
    req = wire.parse_decide({"customer_id": "c-1", "channel": "web", "request_id": "view-1"}, rulebook)
    assert req.request_id == "view-1"
    assert wire.parse_decide({"customer_id": "c-1", "channel": "web"}, rulebook).request_id is None
    for bad in ("", "a{b}", 7, "x" * 129):
        with pytest.raises(InvalidRequest) as refused:
            wire.parse_decide({"customer_id": "c-1", "channel": "web", "request_id": bad}, rulebook)
        assert [e.field for e in refused.value.errors] == ["request_id"]


def test_a_made_up_profile_is_normalised_as_a_stored_one(rulebook: Rulebook) -> None:
    body = {"customer_id": "c-1", "channel": "web", "dry_run": True, "profile": {"tenure_months": 48.0}}
    assert wire.parse_decide(body, rulebook).profile == {"tenure_months": 48}
    assert type(wire.parse_decide(body, rulebook).profile["tenure_months"]) is int  # type: ignore[index]


def test_the_request_window_is_a_channel_setting_of_at_most_a_day(rules_copy: Path) -> None:
    assert {c.request_window for c in load_rulebook(rules_copy).channels.values()} == {1800}
    channels = rules_copy / "channels.yaml"
    text = channels.read_text()
    channels.write_text(text.replace("web:         {", "web:         {request_window: 10m, ", 1))
    assert load_rulebook(rules_copy).channels["web"].request_window == 600
    for bad, message in (("25h", "at most 1d"), ("0s", "must be a duration"), ("30", "must be a duration")):
        channels.write_text(text.replace("web:         {", f"web:         {{request_window: {bad}, ", 1))
        with pytest.raises(RulesInvalid, match=f"request_window: {message}"):
            load_rulebook(rules_copy)
