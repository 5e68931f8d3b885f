"""Decision records as offline evaluation reads them (`nba log export` writes them: learning/record.py).

A record is usable when it shows at least one action with a logged probability in (0, 1]. Each shown
action is a *slot*: its rank, the logging policy's probability of that action at that rank, and the
reward it earned. Records of the control group count too: their probabilities (1/m at every rank) are
exact. Records written before nba integrated its probabilities carry Monte Carlo shares instead; they
are used and counted apart, so the report can say how many.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Slot:
    rank: int  # 1-based
    action: str
    probability: float  # the logging policy's P(this action at this rank)
    reward: float


@dataclass(frozen=True)
class Logged:
    decision_id: str
    channel: str
    arm: str  # model | control
    eligible: tuple[str, ...]
    showable: frozenset[str] | None  # what the logging policy could have shown (None: not logged)
    segment_key: str
    segments: tuple[str, ...]  # the customer's segments then
    features: str
    feature_signature: str
    slots: tuple[Slot, ...]
    monte_carlo: bool  # probabilities estimated from samples (written before they were integrated)

    @property
    def ranks(self) -> int:
        return max(s.rank for s in self.slots)


def read_logs(records: Iterable[Mapping[str, Any]]) -> tuple[list[Logged], Counter[str]]:
    """The usable records, and how many were skipped for which reason."""
    out: list[Logged] = []
    skipped: Counter[str] = Counter()
    for rec in records:
        why, logged = _parse(rec)
        if logged is None:
            skipped[why] += 1
        else:
            out.append(logged)
    return out, skipped


def _parse(rec: Mapping[str, Any]) -> tuple[str, Logged | None]:
    actions = rec.get("actions")
    if not isinstance(actions, list) or not actions:
        return "no_action_shown", None
    rewards = rec.get("rewards") if isinstance(rec.get("rewards"), dict) else {}
    slots: list[Slot] = []
    for position, a in enumerate(actions, 1):
        if not isinstance(a, dict) or not isinstance(a.get("action_id"), str):
            return "malformed", None
        p = a.get("probability")
        if not isinstance(p, int | float) or not 0 < p <= 1:
            return "probability_missing_or_zero", None
        rank = a.get("rank", position)
        if not isinstance(rank, int) or rank < 1:
            return "malformed", None
        reward = rewards.get(a["action_id"], 0.0) if rewards else 0.0
        slots.append(Slot(rank, a["action_id"], float(p), float(reward) if isinstance(reward, int | float) else 0.0))
    eligible = rec.get("eligible")
    if not isinstance(eligible, list) or not all(isinstance(e, str) for e in eligible):
        return "malformed", None
    showable = rec.get("showable")
    return "", Logged(
        decision_id=str(rec.get("decision_id", "")),
        channel=str(rec.get("channel", "")),
        arm=str(rec.get("arm", "model")),
        eligible=tuple(eligible),
        showable=frozenset(showable) if isinstance(showable, list) else None,
        segment_key=str(rec.get("segment_key", "")),
        segments=tuple(s for s in rec.get("segments") or () if isinstance(s, str)),
        features=str(rec.get("features", "")),
        feature_signature=str(rec.get("feature_signature", "")),
        slots=tuple(slots),
        monte_carlo="probability_kind" not in rec and rec.get("arm") != "control",
    )
