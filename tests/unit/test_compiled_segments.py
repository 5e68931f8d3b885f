"""The compiled profile segments (rules/compiled.py, what segments.materialise stores) agree with
conditions.evaluate (what every other segment and condition uses) on every profile, for every segment of
the shipped and the tests' rules."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nba.decision import segments
from nba.rules.compiled import ProfileSegments
from nba.rules.conditions import Facts, evaluate
from nba.rules.load import load_rulebook
from nba.rules.rulebook import Rulebook
from tests.conftest import NOW, RULES, SHIPPED_RULES

RULEBOOKS = {"shipped": load_rulebook(SHIPPED_RULES), "tests": load_rulebook(RULES)}

# values of every type, and of the wrong ones: the two must agree on any input, not only checked input
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 200),
    st.floats(-5, 200, allow_nan=False),
    st.sampled_from(["basic", "medium", "large", "unlimited", "mobile", "", "2026-11-01", "x"]),
)
value = st.one_of(
    scalar,
    st.lists(st.sampled_from(["mobile", "broadband", "tv", "radio"]), max_size=3),
    st.dictionaries(st.sampled_from(["crosssell", "email", "sms"]), st.one_of(st.booleans(), st.none()), max_size=3),
)


def _profiles(rb: Rulebook) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(sorted(rb.attributes)), value)


def _evaluated(rb: Rulebook, attributes: dict[str, Any]) -> int:
    """The profile segments by walking each condition (conditions.evaluate), in dependency order."""
    member: set[str] = set()
    facts = Facts(attributes, {}, member, NOW)
    for seg in rb.segments:
        if seg.kind == "profile" and evaluate(seg.condition, facts):
            member.add(seg.name)
    return sum(1 << i for i, s in enumerate(rb.segments) if s.name in member)


@pytest.mark.parametrize("name", sorted(RULEBOOKS))
@given(data=st.data())
def test_compiled_segments_are_the_materialised_ones(name: str, data: st.DataObject) -> None:
    rb = RULEBOOKS[name]
    attributes = data.draw(_profiles(rb))
    assert ProfileSegments(rb).bits(attributes, NOW) == _evaluated(rb, attributes)
    assert segments.materialise(rb, attributes, NOW) == _evaluated(rb, attributes)


def test_a_rule_set_is_compiled_once() -> None:
    rb = RULEBOOKS["shipped"]
    assert rb.profile_segments is rb.profile_segments
    assert rb.profile_segments.version == rb.segments_version
