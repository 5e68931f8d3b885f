"""Segment membership: profile segments materialised on profile writes, the rest per request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nba.conditions import Facts, evaluate
from nba.domain import BoolArray
from nba.rulebook import Rulebook

_EMPTY: Mapping[str, Any] = {}


def materialise(rulebook: Rulebook, attributes: Mapping[str, Any], now: float) -> list[str]:
    """Profile segments (no time, no context): stored with the profile when it changes."""
    member: set[str] = set()
    facts = Facts(attributes, _EMPTY, member, now)
    for seg in rulebook.segments:
        if seg.kind == "profile" and evaluate(seg.condition, facts):
            member.add(seg.name)
    return [s.name for s in rulebook.segments if s.name in member]


def current(rulebook: Rulebook, attributes: Mapping[str, Any], stored: list[str] | None,
            stored_version: str | None, context: Mapping[str, Any], now: float) -> tuple[set[str], BoolArray]:
    """All segments the customer is in now. Stored profile segments are trusted only if they were
    computed by the same segment definitions; otherwise (rules changed since) they are recomputed."""
    if stored is not None and stored_version == rulebook.segments_version:
        member = set(stored)
    else:
        member = set(materialise(rulebook, attributes, now))
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
