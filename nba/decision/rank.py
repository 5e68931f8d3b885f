"""Ranking one decision, as named stages over every action at once (pure: snapshot, customer data,
request, time and rng in; decision out). docs/architecture.md draws the pipeline.

    who      the customer's segments, facts and learning key
    screen   channel gate (consent, quiet hours), eligibility, contact caps, the per-contact limit
    order    the model's ordering (or the control group's), with the probability of each placement
    rank     the decision, its record for the decision log and the meta the learner credits answers with

`Decider.decide` (decider.py) adds the one Redis read before it and the one write after it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from nba.decision import arbitration, contact_policy, eligibility, explain, segments
from nba.decision.arbitration import Sampling
from nba.decision.beliefs import Beliefs, beliefs_for
from nba.domain import EVENT_CODE, BoolArray, DecideRequest, Decision, FloatArray, History, IntArray, RankedAction
from nba.learning import features
from nba.learning.record import Meta, decision_record
from nba.learning.snapshot import Snapshot
from nba.rules.conditions import Facts
from nba.rules.reasons import render
from nba.rules.rulebook import Channel, Rulebook
from nba.store.contract import CustomerSnapshot
from nba.store.history import newest_first

# A returned action counts as an impression (a reservation) until its impression arrives or this long.
RESERVATION_SECONDS = 1800.0
_IMPRESSION = EVENT_CODE["impression"]


class Ranked(NamedTuple):
    decision: Decision
    record: dict[str, Any]  # what the decision log keeps (learning/record.py)
    meta: str  # what the learner needs to credit answers to this decision's actions (record.Meta)
    arm: str  # model | control: which ordering chose the actions


class Who(NamedTuple):
    """The customer as the stages see them."""

    attributes: Mapping[str, Any]
    member: set[str]  # segments, profile and context
    segment_mask: BoolArray
    facts: Facts
    key: int  # column of the learning model: the first configured key segment they are in


class Screen(NamedTuple):
    """Which actions survive the gates, and what explain needs to say why the others did not."""

    channel: int
    gate: tuple[str, str] | None  # (stage, reason) when the channel itself is closed to this customer
    eligible: BoolArray  # rules, channel, validity, weight (all False behind a closed gate)
    row_counts: IntArray  # per cap row
    capped: BoolArray
    candidates: IntArray
    limit: int  # the request's limit, lowered by the per-contact limit
    contact_full: bool  # the per-contact limit leaves nothing


class Order(NamedTuple):
    """The ordering of the candidates and how it was made."""

    ranking: arbitration.Ranking
    arm: str  # model | control
    model: str  # the channel's model
    attribution_window: float  # the channel's, seconds
    x: FloatArray | None  # the customer's feature vector (contextual model)
    packed: str  # ... as the decision record keeps it
    price: float = 0.0  # the channel's capacity price: the do-nothing bar was raised by it


class How(NamedTuple):
    """How to rank: `rng` draws the samples; `explore=False` ranks by the point estimates (rule tests,
    degraded answers); `situations` keeps the per-segment model's arbitration situations between decisions
    (arbitration.Situations); `bad` is told of history entries that cannot be parsed (they are skipped);
    `price` is the channel's capacity price (outbound/): what an action must be worth above doing nothing."""

    rng: np.random.Generator
    explore: bool = True
    situations: arbitration.Situations | None = None
    bad: Callable[[str], None] | None = None
    price: float = 0.0


def rank(
    snap: Snapshot, customer: CustomerSnapshot, req: DecideRequest, now: float, decision_id: str, how: How
) -> Ranked:
    """The decision for `customer`."""
    rb = snap.rulebook
    person = who(rb, customer, req, now)
    gates = screen(rb, person, customer, req, now, how.bad)
    ordering = order(snap, person, gates, req, how)
    ranking = ordering.ranking
    ranked = [
        ranked_action(
            rb,
            a,
            r + 1,
            float(ranking.score[r]),
            float(ranking.propensity[r]),
            float(ranking.probability[r]),
            person.attributes,
        )
        for r, a in enumerate(ranking.actions.tolist())
    ]
    key_name = rb.learning.keys[person.key]
    decision = Decision(
        decision_id=decision_id,
        customer_id=req.customer_id,
        channel=req.channel,
        actions=ranked,
        segments=[s.name for s in rb.segments if s.name in person.member],
        rules_version=rb.version,
        model_version=snap.model.version,
        explain=explain.explain(snap, person, gates, ordering) if req.explain else None,
        context=req.context,
        contact_id=req.contact_id,
        segment_key=key_name,
        ts=now,
    )
    space = rb.learning.features
    meta = Meta(
        req.channel,
        key_name,
        ordering.arm,
        int((now + ordering.attribution_window) * 1000),
        space.signature,
        ordering.packed,
    )
    record = decision_record(
        decision,
        rb.action_ids[gates.candidates].tolist(),
        rb.action_ids[ranking.contenders].tolist(),
        ranking.draw.tolist(),
        meta,
        ordering.model,
    )
    return Ranked(decision, record, meta.text(), ordering.arm)


def ranked_action(
    rb: Rulebook,
    a: int,
    place: int,
    score: float,
    propensity: float,
    probability: float,
    attributes: Mapping[str, Any],
) -> RankedAction:
    """Action `a` as an answer shows it at `place`, its reason written for this customer."""
    action = rb.actions[a]
    return RankedAction(
        action_id=action.id,
        rank=place,
        group=rb.groups[rb.group_of[a]],
        score=score,
        propensity=propensity,
        probability=probability,
        value=float(rb.value[a]),
        content=action.content,
        reason=render(action.reason_template, attributes),
    )


def who(rb: Rulebook, customer: CustomerSnapshot, req: DecideRequest, now: float) -> Who:
    attrs = customer.attributes or {}
    member, mask = segments.current(rb, attrs, customer.segments, customer.segments_version, req.context, now)
    return Who(attrs, member, mask, Facts(attrs, req.context, member, now), segments.segment_key(rb, member))


def screen(
    rb: Rulebook,
    person: Who,
    customer: CustomerSnapshot,
    req: DecideRequest,
    now: float,
    bad: Callable[[str], None] | None = None,
) -> Screen:
    ch = rb.channel_index[req.channel]
    mask = eligibility.eligible(
        rb.program, person.segment_mask, person.facts, rb.channel_ok[:, ch], rb.active_from, rb.active_until, rb.weight
    )
    gate = channel_gate(rb.channels[req.channel], person.attributes, now)
    if gate is not None:
        mask = np.zeros_like(mask)
    history = parse_history(customer.history, rb, now, bad)
    row_counts = contact_policy.counts(rb.caps, history, now, rb.group_of)
    capped = contact_policy.blocked(rb.caps, row_counts, ch, rb.group_of, rb.mandatory, len(rb.groups))
    limit = req.limit
    if rb.contact is not None and req.contact_id is not None:
        limit = max(0, min(limit, rb.contact.max_actions - customer.contact_actions))
    return Screen(
        ch, gate, mask, row_counts, capped, np.flatnonzero(mask & ~capped), limit, limit < req.limit and limit == 0
    )


def channel_gate(channel: Channel, attrs: Mapping[str, Any], now: float) -> tuple[str, str] | None:
    """Nothing goes out on a channel without its consent, nor during its quiet hours."""
    if channel.consent is not None and _consents(attrs).get(channel.consent) is not True:
        return "consent", f"no {channel.consent} consent for the {channel.name} channel"
    q = channel.quiet_hours
    if q is not None and q.covers(now):
        return "quiet_hours", (
            f"quiet hours on {channel.name}: {q.start_minute // 60:02d}:{q.start_minute % 60:02d}"
            f"-{q.end_minute // 60:02d}:{q.end_minute % 60:02d} {q.timezone}"
        )
    return None


def order(snap: Snapshot, person: Who, gates: Screen, req: DecideRequest, how: How) -> Order:
    """The model's ordering of the candidates, or for a customer in the control group, the control's:
    what the rules alone imply (the priors' means) or a random order."""
    rb = snap.rulebook
    learning = rb.learning
    cl = learning.for_channel(req.channel)
    space = learning.features
    x = features.encode(space, person.attributes, req.context, person.member) if space.features else None
    packed = features.pack(x) if x is not None else ""
    control = learning.control
    in_control = control is not None and control.includes(control_bucket(req.customer_id))
    candidates, limit = gates.candidates, gates.limit
    # a capacity price raises the do-nothing bar (the no_action candidates' levers): an action is shown only
    # when its priority beats doing nothing by the price, as the outbound run that set it chose
    lever = rb.lever + how.price * rb.no_action if how.price > 0 else rb.lever
    if in_control and control is not None and control.ordering == "rules":
        prior = rb.prior_alpha[candidates] / (rb.prior_alpha[candidates] + rb.prior_beta[candidates])
        ranking = arbitration.arbitrate(
            candidates, Beliefs.points(prior), lever, rb.no_action, limit, Sampling(how.rng, False)
        )
    elif in_control:
        beliefs = beliefs_for(snap, cl.model, cl.exploration, candidates, person.key, x)
        ranking = arbitration.random_order(candidates, beliefs, lever, rb.no_action, limit, how.rng)
    elif how.situations is not None and how.explore and (cl.model == "thompson" or x is None):
        # the per-segment model: a situation repeats for every customer with this key and eligible set
        key = (person.key, cl.exploration, limit, candidates.tobytes(), how.price)
        situation = how.situations.get(key, snap.model)
        if situation is None:
            beliefs = beliefs_for(snap, cl.model, cl.exploration, candidates, person.key, x)
            situation = arbitration.Situation(candidates, beliefs, lever, rb.no_action, limit, arbitration.BLOCK)
            how.situations.put(key, snap.model, situation)
        ranking = situation.decide(how.rng)
    else:
        beliefs = beliefs_for(snap, cl.model, cl.exploration, candidates, person.key, x)
        ranking = arbitration.arbitrate(candidates, beliefs, lever, rb.no_action, limit, Sampling(how.rng, how.explore))
    arm = "control" if in_control else "model"
    return Order(ranking, arm, cl.model, cl.attribution_window, x, packed, how.price)


def parse_history(raw: bytes, rb: Rulebook, now: float, bad: Callable[[str], None] | None = None) -> History:
    """The packed history (store/history.py) inside the longest cap window, newest first, as arrays;
    unknown ids become -1. Live reservations count as impressions, expired ones as nothing. Entries that
    cannot be parsed are skipped and handed to `bad`."""
    if not raw:
        return History.empty()
    actions, channels = rb.action_index, rb.channel_index
    live_from = now - RESERVATION_SECONDS
    ts: list[float] = []
    event: list[int] = []
    action: list[int] = []
    channel: list[int] = []
    for t, e, a, c in newest_first(raw, int((now - rb.caps.horizon) * 1000), bad):
        seconds = t / 1000.0
        ts.append(seconds)
        event.append(e if e >= 0 else _IMPRESSION if seconds > live_from else -1)  # e < 0: a reservation
        action.append(actions.get(a, -1))
        channel.append(channels.get(c, -1))
    if not ts:
        return History.empty()
    return History(np.array(ts), np.array(event, np.int64), np.array(action, np.int64), np.array(channel, np.int64))


def control_bucket(customer_id: str) -> float:
    """A customer's stable place in [0, 1): the control group is the bottom `share` of it."""
    digest = hashlib.blake2b(customer_id.encode(), digest_size=8, person=b"nba-ctrl").digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _consents(attrs: Mapping[str, Any]) -> Mapping[str, Any]:
    c = attrs.get("consents")
    return c if isinstance(c, dict) else {}
