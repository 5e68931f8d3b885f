"""What a decision leaves for learning, in the formats the learner, the Lua scripts and offline
evaluation read.

- `Meta`: per returned action, the text "channel|segment key|arm|attribution deadline ms|feature
  signature|features" in the decision's hash (store/scripts.py reads its channel and deadline, the
  learner all of it).
- `decision_record`: the JSON record `nba log export` writes and evaluation/ replays: the eligible set,
  what could have been shown, what was placed where with which probability and draw, the arm, model
  and features.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from nba.domain import Decision


class Meta(NamedTuple):
    """What a decision record says about one returned action: its field `a:<action>`."""

    channel: str
    segment_key: str
    arm: str
    deadline_ms: int
    signature: str
    features: str

    def text(self) -> str:
        """As RECORD_DECISION stores it and CREDIT_EVENTS / APPLY_EVENTS read the channel and deadline."""
        return f"{self.channel}|{self.segment_key}|{self.arm}|{self.deadline_ms}|{self.signature}|{self.features}"

    @staticmethod
    def parse(text: str) -> Meta:
        """ValueError when `text` is not a meta nba wrote."""
        channel, key, arm, deadline, signature, features = text.split("|", 5)
        return Meta(channel, key, arm, int(deadline), signature, features)


def decision_record(
    d: Decision, eligible: list[str], showable: list[str], draws: list[float], meta: Meta, model: str
) -> dict[str, Any]:
    """The decision log's record of `d`: `eligible` are the candidates' ids, `showable` those the policy
    could have shown (the others could never reach the top), `draws` the sampled value of each returned
    action, `meta` what the learner is told of each (the arm and features), `model` the channel's model."""
    return {
        "decision_id": d.decision_id,
        "customer_id": d.customer_id,
        "channel": d.channel,
        "contact_id": d.contact_id,
        "ts": d.ts,
        "context": d.context,
        "segments": d.segments,
        "segment_key": d.segment_key,
        "rules_version": d.rules_version,
        "model_version": d.model_version,
        "eligible": eligible,
        "showable": showable,
        "actions": [
            {
                "action_id": a.action_id,
                "rank": a.rank,
                "score": a.score,
                "propensity": a.propensity,
                "probability": a.probability,
                "draw": draw,
            }
            for a, draw in zip(d.actions, draws, strict=True)
        ],
        "probability_kind": "integrated",  # records before it carried Monte Carlo shares (probability_draws)
        "arm": meta.arm,
        "model": model,
        "features": meta.features,
        "feature_signature": meta.signature,
    }
