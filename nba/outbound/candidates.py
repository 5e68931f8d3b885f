"""What one customer could be sent on an outbound run: decide's own stages (rank.who and rank.screen:
segments, consent, eligibility, contact caps) at the send time, and each candidate's score as decide
would rank it without exploring: the model's point estimate of the propensity x value x weight, above
the do-nothing bar. Pure: the customer's stored data, the snapshot and the time in."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from nba.decision import rank
from nba.decision.arbitration import do_nothing
from nba.decision.beliefs import beliefs_for
from nba.domain import DecideRequest, FloatArray, IntArray
from nba.learning import features
from nba.learning.snapshot import Snapshot
from nba.store.contract import CustomerSnapshot


class Candidates(NamedTuple):
    actions: IntArray  # rulebook indices of the actions worth more than doing nothing
    score: FloatArray  # priority above the do-nothing bar (> 0)
    propensity: FloatArray  # the model's point estimate
    key: int  # the customer's learning key (segment) column
    arm: str  # model | control
    features: str  # the packed feature vector (contextual model), as decisions record it
    member: frozenset[str]  # the customer's segments
    gate: str | None  # why the channel is closed to them (consent), when it is


NONE: IntArray = np.zeros(0, np.int64)


def candidates(
    snap: Snapshot,
    customer_id: str,
    customer: CustomerSnapshot,
    channel: str,
    at: float,
    control_rng: np.random.Generator,
) -> Candidates:
    """The customer's candidates on `channel` for sending at `at` (outside the channel's quiet hours: the
    caller moved it there). A customer in the control group is scored as decide orders them: by the
    rules' priors, or at random (drawn from `control_rng`)."""
    rb = snap.rulebook
    req = DecideRequest(customer_id, channel, {}, rb.channels[channel].max_limit, False, None)
    person = rank.who(rb, customer, req, at)
    gates = rank.screen(rb, person, customer, req, at)
    member = frozenset(person.member)
    if gates.gate is not None:
        return Candidates(NONE, np.zeros(0), np.zeros(0), person.key, "model", "", member, gates.gate[1])
    cand = gates.candidates
    learning = rb.learning
    cl = learning.for_channel(channel)
    space = learning.features
    x = features.encode(space, person.attributes, {}, person.member) if space.features else None
    control = learning.control
    in_control = control is not None and control.includes(rank.control_bucket(customer_id))
    if cl.model == "thompson" or x is None:
        propensity: FloatArray = np.asarray(snap.model.mean[cand, person.key], np.float64)
    else:
        propensity = np.asarray(beliefs_for(snap, cl.model, cl.exploration, cand, person.key, x).mean, np.float64)
    ordering: FloatArray = propensity  # what the customer's arm ranks by
    if in_control and control is not None and control.ordering == "random":
        ordering = np.asarray(control_rng.random(cand.shape[0]), np.float64)
    elif in_control:
        ordering = np.asarray(rb.prior_alpha[cand] / (rb.prior_alpha[cand] + rb.prior_beta[cand]), np.float64)
    fixed, lever = rb.no_action[cand], rb.lever[cand]
    priority = ordering * lever
    bar = do_nothing(lever, fixed) or 0.0  # without a no_action action: anything worth more than 0
    worth = ~fixed & (priority > bar)
    return Candidates(
        cand[worth],
        priority[worth] - bar,
        propensity[worth],
        person.key,
        "control" if in_control else "model",
        features.pack(x) if x is not None else "",
        member,
        None,
    )
