"""Every id field accepts exactly 1-128 of `A-Z a-z 0-9 . _ : @ + -`, whatever else a client sends:
control characters, Unicode line separators, a trailing newline (which `re.match` with `$` let in)."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nba.domain import MAX_ID, check_id
from nba.errors import FieldError, InvalidRequest
from nba.http import wire
from nba.rules.rulebook import Rulebook
from tests.conftest import NOW

ALLOWED = set(string.ascii_letters + string.digits + "._:@+-")
NASTY = [
    "\n",
    "\r",
    "\r\n",
    "\x00",
    "\t",
    " ",
    "\u2028",
    "\u2029",
    "\x85",
    "\x0b",
    "\x0c",
    "|",
    "{",
    "}",
    "*",
    "?",
    "é",
    "\ufeff",
]

# valid ids, and valid ids with a nasty character somewhere (most often at the end, where `$` failed)
valid_ids = st.text(alphabet=sorted(ALLOWED), min_size=1, max_size=130)
ids = st.one_of(
    valid_ids,
    st.tuples(valid_ids, st.sampled_from(NASTY)).map(lambda t: t[0] + t[1]),
    st.tuples(st.sampled_from(NASTY), valid_ids).map(lambda t: t[0] + t[1]),
    st.tuples(valid_ids, st.sampled_from(NASTY), valid_ids).map(lambda t: t[0] + t[1] + t[2]),
    st.text(max_size=140),
)


def ok(value: str) -> bool:
    return 1 <= len(value) <= MAX_ID and set(value) <= ALLOWED


@given(ids)
def test_check_id_accepts_exactly_the_documented_ids(value: str) -> None:
    errors: list[FieldError] = []
    assert (check_id(value, "x", errors) == value) is ok(value)
    assert bool(errors) is not ok(value)


def _accepted(parse: Any, body: dict[str, Any], field: str) -> bool:
    """Whether `parse` takes `body`; when it refuses, the one error must name `field`."""
    errors: list[str] = []
    try:
        parse(body)
    except InvalidRequest as exc:
        errors = [e.field for e in exc.errors]
    assert errors in ([], [field])
    return not errors


@pytest.mark.parametrize("field", ["customer_id", "contact_id"])
@given(value=ids)
def test_every_decide_id_field(rulebook: Rulebook, field: str, value: str) -> None:
    body = {"customer_id": "c-1", "channel": "web", "contact_id": "call-1", field: value}
    assert _accepted(lambda b: wire.parse_decide(b, rulebook), body, field) is ok(value)


@pytest.mark.parametrize("field", ["event_id", "customer_id", "action_id", "decision_id"])
@given(value=ids)
def test_every_event_id_field(rulebook: Rulebook, field: str, value: str) -> None:
    event = {
        "event_id": "e-1",
        "type": "click",
        "customer_id": "c-1",
        "action_id": "tv-addon",
        "decision_id": "d-1",
        "channel": "web",
        field: value,
    }
    accepted = _accepted(lambda b: wire.parse_events(b, rulebook, NOW), {"events": [event]}, f"events[0].{field}")
    # an action id must also be one of the rules' (a made-up one would be stored as a counter for ever)
    assert accepted is (ok(value) and (field != "action_id" or value in rulebook.action_index))


@given(value=st.one_of(st.sampled_from(["web", "call_center", "email", "app"]), ids))
def test_channels_are_the_rule_set_s_exactly(rulebook: Rulebook, value: str) -> None:
    known = value in rulebook.channels
    decide = {"customer_id": "c-1", "channel": value}
    assert _accepted(lambda b: wire.parse_decide(b, rulebook), decide, "channel") is known
    event = {"event_id": "e-1", "type": "click", "customer_id": "c-1", "action_id": "tv-addon", "channel": value}
    assert _accepted(lambda b: wire.parse_events(b, rulebook, NOW), {"events": [event]}, "events[0].channel") is known


@given(
    key=st.one_of(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,70}", fullmatch=True),
        st.tuples(st.from_regex(r"[A-Za-z_]{1,10}", fullmatch=True), st.sampled_from(NASTY)).map(lambda t: t[0] + t[1]),
    )
)
def test_context_keys_are_identifiers_with_nothing_after(rulebook: Rulebook, key: str) -> None:
    good = len(key) <= wire.MAX_CONTEXT_KEY and wire.CONTEXT_KEY_RE.fullmatch(key) is not None
    assert good is (
        key.isascii() and key.replace("_", "a").isalnum() and not key[0].isdigit() and len(key) <= wire.MAX_CONTEXT_KEY
    )
    body = {"customer_id": "c-1", "channel": "web", "context": {key: 1}}
    assert _accepted(lambda b: wire.parse_decide(b, rulebook), body, f"context.{key}") is good
