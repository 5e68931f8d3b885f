"""Eligibility: which actions this customer may get now on this channel, all at once."""

from __future__ import annotations

from nba.domain import BoolArray, FloatArray
from nba.rules.conditions import Facts
from nba.rules.program import Program


def eligible(
    program: Program,
    segment_mask: BoolArray,
    facts: Facts,
    channel_ok: BoolArray,
    active_from: FloatArray,
    active_until: FloatArray,
    weight: FloatArray,
) -> BoolArray:
    """Actions this customer may get now on this channel: rules, channel, validity dates, not paused."""
    now = facts.now
    mask: BoolArray = (
        program.run(segment_mask, facts) & channel_ok & (active_from <= now) & (now < active_until) & (weight > 0)
    )
    return mask
