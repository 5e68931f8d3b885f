"""What the model in use believes about each candidate action for one customer: a Beta posterior per
action and segment key (thompson) or a Normal score from the contextual model, with the channel's
exploration."""

from __future__ import annotations

from nba.decision import arbitration
from nba.domain import FloatArray, IntArray
from nba.learning.snapshot import Snapshot


def beliefs_for(
    snap: Snapshot, model: str, exploration: float, candidates: IntArray, key: int, x: FloatArray | None
) -> arbitration.Beliefs:
    """The model's beliefs about `candidates` for this customer: the channel's model and exploration."""
    if model == "contextual" and x is not None:
        mean, sd = snap.contextual.score(x, candidates)
        return arbitration.Beliefs.normal(mean, sd, exploration)
    m = snap.model
    return arbitration.Beliefs.beta(
        m.alpha[candidates, key], m.beta[candidates, key], m.low[candidates, key], m.high[candidates, key], exploration
    )
