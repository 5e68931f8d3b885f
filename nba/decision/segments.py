"""Segment membership: profile segments materialised on profile writes, the rest per request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nba.domain import BoolArray
from nba.rules.conditions import Facts, evaluate
from nba.rules.rulebook import Rulebook


def materialise(rulebook: Rulebook, attributes: Mapping[str, Any], now: float) -> int:
    """Profile segments (no time, no context), stored with the profile when it changes: bit i is the
    rule set's i-th segment, which is stable while its segments version is (a few bytes per customer
    instead of the names)."""
    return rulebook.profile_segments.bits(attributes, now)


def _profile_segments(rulebook: Rulebook, attributes: Mapping[str, Any], now: float) -> set[str]:
    return _members(rulebook, materialise(rulebook, attributes, now))


def _members(rulebook: Rulebook, bits: int) -> set[str]:
    return {s.name for i, s in enumerate(rulebook.segments) if bits >> i & 1}


def current(
    rulebook: Rulebook,
    attributes: Mapping[str, Any],
    stored: int | None,
    stored_version: str | None,
    context: Mapping[str, Any],
    now: float,
) -> tuple[set[str], BoolArray]:
    """All segments the customer is in now. Stored profile segments are trusted only if they were
    computed by the same segment definitions; otherwise (rules changed since) they are recomputed."""
    if stored is not None and stored_version == rulebook.segments_version:
        member = _members(rulebook, stored)
    else:
        member = _profile_segments(rulebook, attributes, now)
    facts = Facts(attributes, context, member, now)
    for seg in rulebook.segments:
        if seg.kind != "profile" and evaluate(seg.condition, facts):
            member.add(seg.name)
    mask = np.zeros(len(rulebook.segments), bool)
    index = rulebook.segment_index
    for name in member:
        mask[index[name]] = True
    return member, mask


def segment_key(rulebook: Rulebook, member: set[str]) -> int:
    """Column of the learning model for this customer: the first configured key segment they are in."""
    for i, name in enumerate(rulebook.learning.segment_key):
        if name in member:
            return i
    return len(rulebook.learning.segment_key)
