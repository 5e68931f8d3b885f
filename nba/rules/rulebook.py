"""The rule model: one immutable Rulebook of a validated rule set, with numpy arrays over all actions.

load.py reads and validates `rules/` into it, compile.py builds its arrays.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from nba.domain import BoolArray, FloatArray, IntArray
from nba.rules.caps import CapTable
from nba.rules.conditions import (
    AttributeType,
    Condition,
)
from nba.rules.learning_settings import Learning
from nba.rules.program import Program
from nba.rules.reasons import Template

if TYPE_CHECKING:
    from nba.rules.compiled import ProfileSegments

FOREVER = 4102444800.0  # 2100-01-01, "no end date"
MAX_ACTIONS = 10_000
SegmentKind = Literal["profile", "dynamic", "context"]


@dataclass(frozen=True)
class QuietHours:
    """Local times between which an outbound channel sends nothing (may wrap past midnight)."""

    start_minute: int
    end_minute: int
    timezone: str

    def next_open(self, now: float) -> float:
        """`now` when the quiet hours do not cover it, else the moment they end."""
        if not self.covers(now):
            return now
        local = dt.datetime.fromtimestamp(now, ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        day = local.date() + dt.timedelta(days=1 if minute >= self.end_minute else 0)
        end = dt.datetime.combine(day, dt.time(self.end_minute // 60, self.end_minute % 60), ZoneInfo(self.timezone))
        return max(now, end.timestamp())

    def covers(self, now: float) -> bool:
        local = dt.datetime.fromtimestamp(now, ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        if self.start_minute <= self.end_minute:
            return self.start_minute <= minute < self.end_minute
        return minute >= self.start_minute or minute < self.end_minute


@dataclass(frozen=True)
class Capacity:
    """How many actions a channel can carry out per day (its local day: the quiet hours' timezone, else
    UTC): outbound runs select within it, and with `real_time` its price from the latest run raises the
    do-nothing bar of real-time decisions on the channel (nba/outbound/)."""

    per_day: int
    real_time: bool = False


@dataclass(frozen=True)
class Channel:
    name: str
    direction: Literal["inbound", "outbound"]
    default_limit: int
    max_limit: int
    consent: str | None  # a flag in the `consents` attribute that must be true for this channel
    quiet_hours: QuietHours | None = None
    # seconds nba keeps what it records for a customer without a profile (decisions, reservations, events);
    # 0: nothing is recorded for them, so made-up ids cost no memory and cannot use up anyone's caps
    remember_anonymous: int = 0
    capacity: Capacity | None = None
    # seconds a decide `request_id` names one answer: a repeat within it (a reload of the page, the agent's
    # screen refreshed during the call) gets the same decision and reserves nothing more
    request_window: int = 1800

    @property
    def timezone(self) -> str:
        """Where the channel's days begin and end (capacities per day, quiet hours)."""
        return self.quiet_hours.timezone if self.quiet_hours is not None else "UTC"


# One layer of an action's rules: (stage, "file: key", condition). Stages, in order: eligibility (who
# may get it), applicability (does it fit this contact), suitability (is it good for this customer),
# consent (the customer agreed to its purpose).
Layer = tuple[str, str, Condition]
LAYER_KEYS = {"eligible_when": "eligibility", "applicable_when": "applicability", "suitable_when": "suitability"}


@dataclass(frozen=True)
class Segment:
    name: str
    condition: Condition
    kind: SegmentKind  # profile: materialised on profile writes; dynamic (time) and context: per request
    description: str
    label: str = ""  # how explanations name its members: "customers <label>" (default: its condition in words)


@dataclass(frozen=True)
class Action:
    id: str
    name: str
    group: str
    kind: Literal["offer", "no_action"]
    channels: tuple[str, ...]
    value: float
    weight: float
    active_from: float
    active_until: float
    condition: Condition  # all layers and-ed: what the vectorised eligibility program evaluates
    layers: tuple[Layer, ...]
    purpose: str | None
    content: dict[str, Any]
    reason: str
    reason_template: Template
    mandatory: bool
    prior: tuple[float, float]
    file: str
    volume: int | None = None  # outbound runs select it at most this often per day (None: no limit)
    cost: float = 0.0  # what one contact costs (a run's budget), EUR


@dataclass(frozen=True)
class ContactLimit:
    """At most `max_actions` actions over all decisions that share a contact_id within `within` s."""

    max_actions: int
    within: float


@dataclass(frozen=True)
class Rulebook:
    version: str
    segments_version: str  # changes only with profile.yaml / segments.yaml: materialised segments stay valid
    channels: Mapping[str, Channel]
    attributes: Mapping[str, AttributeType]
    list_values: Mapping[str, tuple[str, ...]]
    segments: tuple[Segment, ...]  # in dependency order
    actions: tuple[Action, ...]
    groups: tuple[str, ...]
    group_weights: Mapping[str, float]
    learning: Learning
    contact: ContactLimit | None
    caps: CapTable
    program: Program
    # arrays over actions (rulebook order)
    group_of: IntArray
    value: FloatArray
    weight: FloatArray  # action weight x group weight
    lever: FloatArray  # value x weight
    active_from: FloatArray
    active_until: FloatArray
    channel_ok: BoolArray  # (actions, channels)
    no_action: BoolArray
    mandatory: BoolArray
    prior_alpha: FloatArray
    prior_beta: FloatArray
    cost: FloatArray  # what one contact costs, per action (outbound budgets)
    files: tuple[str, ...] = ()
    action_index: Mapping[str, int] = field(default_factory=dict)
    channel_index: Mapping[str, int] = field(default_factory=dict)
    segment_index: Mapping[str, int] = field(default_factory=dict)

    @cached_property
    def action_ids(self) -> npt.NDArray[np.object_]:
        """Action ids in rulebook order, to turn index arrays into ids without a Python loop."""
        return np.array([a.id for a in self.actions], dtype=object)

    @cached_property
    def profile_segments(self) -> ProfileSegments:
        """The profile segments compiled (rules/compiled.py), once per rule set."""
        from nba.rules.compiled import ProfileSegments  # compiled reads conditions; the rulebook only names them

        return ProfileSegments(self)

    @cached_property
    def segment_labels(self) -> dict[str, str]:
        """Segment -> the phrase explanations use after "customers": its label, or its condition in words."""
        from nba.rules.plain import phrase  # plain reads conditions; the rulebook only names them

        out: dict[str, str] = {}
        for seg in self.segments:  # in dependency order: a segment's own segments are named first
            out[seg.name] = seg.label or phrase(seg.condition, out)
        return out

    @property
    def segment_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.segments)
