"""The decision pipeline, as in DESIGN.md section 5: read customer -> masks -> sample -> rank -> record.

`rank` is pure (snapshot, customer data, request, now, rng in; decision out) and is what the tests
drive directly; `Decider.decide` adds the one Redis read before it and the one write after it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np
import orjson
from redis.exceptions import RedisError

from nba.concurrency import Deadline, KeyedLocks
from nba.decision import arbitration, contact_policy, eligibility, segments
from nba.domain import EVENT_CODE, BoolArray, DecideRequest, Decision, FloatArray, History, IntArray, RankedAction
from nba.errors import StoredDataUnreadable, Unavailable
from nba.learning import features
from nba.learning.learner import Meta
from nba.live import Live, Snapshot
from nba.metrics import Metrics
from nba.rules.conditions import Facts, first_failure
from nba.rules.reasons import render
from nba.rules.rulebook import Rulebook
from nba.store.history import newest_first
from nba.store.redis import CustomerSnapshot, Recorded, Store

RECORD_ATTEMPTS = 10
DEGRADED_LOG_SECONDS = 10.0
log = logging.getLogger(__name__)


# A returned action counts as an impression (a reservation) until its impression arrives or this long.
RESERVATION_SECONDS = 1800.0
_IMPRESSION = EVENT_CODE["impression"]


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


@dataclass(frozen=True)
class Ranked:
    decision: Decision
    record: dict[str, Any]  # what the decision log keeps
    segment_key: str
    meta: str  # what the learner needs to credit answers to this decision's actions (learner.Meta)


def rank(snap: Snapshot, customer: CustomerSnapshot, req: DecideRequest, now: float,
         rng: np.random.Generator, decision_id: str, *, explore: bool = True,
         tally: arbitration.Tally | None = None, bad: Callable[[str], None] | None = None) -> Ranked:
    """The decision for `customer`; `bad` is told of history entries that cannot be parsed (skipped)."""
    rb, model = snap.rulebook, snap.model
    attrs = customer.attributes or {}
    member, seg_mask = segments.current(rb, attrs, customer.segments, customer.segments_version, req.context, now)
    facts = Facts(attrs, req.context, member, now)
    ch = rb.channel_index[req.channel]
    channel = rb.channels[req.channel]
    mask = eligibility.eligible(rb.program, seg_mask, facts, rb.channel_ok[:, ch], rb.active_from,
                                rb.active_until, rb.weight)
    # channel gates: nothing goes out on a channel without its consent, nor during its quiet hours
    gate = None
    if channel.consent is not None and _consents(attrs).get(channel.consent) is not True:
        gate = ("consent", f"no {channel.consent} consent for the {req.channel} channel")
    elif channel.quiet_hours is not None and channel.quiet_hours.covers(now):
        q = channel.quiet_hours
        gate = ("quiet_hours", f"quiet hours on {req.channel}: {q.start_minute // 60:02d}:{q.start_minute % 60:02d}"
                               f"-{q.end_minute // 60:02d}:{q.end_minute % 60:02d} {q.timezone}")
    if gate is not None:
        mask = np.zeros_like(mask)
    history = parse_history(customer.history, rb, now, bad)
    row_counts = contact_policy.counts(rb.caps, history, now, rb.group_of)
    capped = contact_policy.blocked(rb.caps, row_counts, ch, rb.group_of, rb.mandatory, len(rb.groups))
    candidates = np.flatnonzero(mask & ~capped)
    key = segments.segment_key(rb, member)
    limit = req.limit
    if rb.contact is not None and req.contact_id is not None:
        limit = max(0, min(limit, rb.contact.max_actions - customer.contact_actions))
    learning = rb.learning
    cl = learning.for_channel(req.channel)
    space = learning.features
    x = features.encode(space, attrs, req.context, member) if space.features else None
    packed = features.pack(x) if x is not None else ""
    control = learning.control
    in_control = control is not None and control.includes(control_bucket(req.customer_id))
    arm = "control" if in_control else "model"
    if in_control and control is not None and control.ordering == "rules":
        # what the rules alone imply: the priors' means, no pruning
        beliefs = arbitration.Beliefs.beta(rb.prior_alpha[candidates], rb.prior_beta[candidates],
                                           np.zeros(candidates.shape[0]), np.ones(candidates.shape[0]))
        ranking = arbitration.arbitrate(candidates, beliefs, rb.lever, rb.no_action, limit, rng, 1, explore=False)
    else:
        beliefs = beliefs_for(snap, cl.model, cl.exploration, candidates, key, x)
        if in_control:
            ranking = arbitration.random_order(candidates, beliefs, rb.lever, rb.no_action, limit, rng)
        else:
            ranking = arbitration.arbitrate(candidates, beliefs, rb.lever, rb.no_action, limit, rng,
                                            learning.probability_draws, explore=explore, tally=tally)
    key_name = learning.keys[key]
    ranked = [
        RankedAction(
            action_id=rb.actions[a].id, rank=r + 1, group=rb.groups[rb.group_of[a]],
            score=float(ranking.score[r]), propensity=float(ranking.propensity[r]),
            probability=float(ranking.probability[r]), value=float(rb.value[a]),
            content=rb.actions[a].content, reason=render(rb.actions[a].reason_template, attrs),
        )
        for r, a in enumerate(ranking.actions.tolist())
    ]
    seg_list = [s.name for s in rb.segments if s.name in member]
    explain = None
    if req.explain:
        everyone = np.arange(len(rb.actions))
        means = beliefs_for(snap, cl.model, 0.0, everyone, key, x).mean
        explain = _explain(snap, facts, ch, gate, mask, row_counts, capped, ranking, key,
                           limit < req.limit and limit == 0, means, cl.model)
    decision = Decision(
        decision_id=decision_id, customer_id=req.customer_id, channel=req.channel, actions=ranked,
        segments=seg_list, rules_version=rb.version, model_version=model.version, explain=explain,
        context=req.context, contact_id=req.contact_id, segment_key=key_name, ts=now,
    )
    record = {
        "decision_id": decision_id, "customer_id": req.customer_id, "channel": req.channel,
        "contact_id": req.contact_id, "ts": now, "context": req.context, "segments": seg_list,
        "segment_key": key_name, "rules_version": rb.version, "model_version": model.version,
        "eligible": rb.action_ids[candidates].tolist(),
        "actions": [{"action_id": x.action_id, "rank": x.rank, "score": x.score, "propensity": x.propensity,
                     "probability": x.probability, "draw": float(d)}
                    for x, d in zip(ranked, ranking.draw.tolist(), strict=True)],
        "probability_draws": ranking.draws, "arm": arm, "model": cl.model,
        "features": packed, "feature_signature": space.signature,
    }
    meta = Meta(req.channel, key_name, arm, int((now + cl.attribution_window) * 1000), space.signature, packed)
    return Ranked(decision, record, key_name, meta.text())


def beliefs_for(snap: Snapshot, model: str, exploration: float, candidates: IntArray, key: int,
             x: FloatArray | None) -> arbitration.Beliefs:
    """The model's beliefs about `candidates` for this customer: the channel's model and exploration."""
    if model == "contextual" and x is not None:
        mean, sd = snap.contextual.score(x, candidates)
        return arbitration.Beliefs.normal(mean, sd, exploration)
    m = snap.model
    return arbitration.Beliefs.beta(m.alpha[candidates, key], m.beta[candidates, key], m.low[candidates, key],
                                    m.high[candidates, key], exploration)


def control_bucket(customer_id: str) -> float:
    """A customer's stable place in [0, 1): the control group is the bottom `share` of it."""
    digest = hashlib.blake2b(customer_id.encode(), digest_size=8, person=b"nba-ctrl").digest()
    return int.from_bytes(digest, "big") / 2.0 ** 64


def _consents(attrs: Mapping[str, Any]) -> Mapping[str, Any]:
    c = attrs.get("consents")
    return c if isinstance(c, dict) else {}


def _explain(snap: Snapshot, facts: Facts, ch: int, gate: tuple[str, str] | None, mask: BoolArray, row_counts: Any,
             capped: BoolArray, ranking: arbitration.Ranking, key: int, contact_full: bool, means: FloatArray,
             model_name: str) -> list[dict[str, Any]]:
    """Per candidate action: the stage that removed it, or its score components. Off the hot path."""
    rb, model = snap.rulebook, snap.model
    now = facts.now
    cap_reasons = contact_policy.reasons(rb.caps, row_counts, ch, rb.group_of, rb.mandatory)
    shown = {int(a): r for r, a in enumerate(ranking.actions.tolist())}
    contenders = set(ranking.contenders.tolist())
    out: list[dict[str, Any]] = []
    for i, a in enumerate(rb.actions):
        item: dict[str, Any] = {"action_id": a.id, "rule": a.file, "eligible": bool(mask[i])}
        if not rb.channel_ok[i, ch]:
            item |= {"stage": "channel", "reason": f"not offered on {facts_channel(rb, ch)}"}
        elif not rb.active_from[i] <= now < rb.active_until[i]:
            item |= {"stage": "validity", "reason": "outside its active dates"}
        elif rb.weight[i] <= 0:
            item |= {"stage": "paused", "reason": "weight is 0"}
        elif gate is not None:
            item |= {"stage": gate[0], "reason": gate[1]}
        elif not mask[i]:
            item |= _failed_layer(a, facts)
        elif capped[i]:
            item |= {"stage": "contact_policy", "reason": cap_reasons.get(i, "capped")}
        elif contact_full and rb.contact is not None:
            item |= {"stage": "contact_limit", "reason": f"policy.yaml: contact: this contact already had "
                                                        f"{rb.contact.max_actions} actions"}
        else:
            components = {"propensity": float(means[i]), "model": model_name, "value": float(rb.value[i]),
                          "weight": float(rb.weight[i]), "segment_key": rb.learning.keys[key],
                          "trials": float(model.trials[i, key]), "rewards": float(model.rewards[i, key])}
            if i in shown:
                r = shown[i]
                components |= {"draw": float(ranking.draw[r]), "score": float(ranking.score[r])}
                item |= {"stage": "ranked", "rank": r + 1, "components": components}
            elif a.kind == "no_action":
                item |= {"stage": "threshold", "reason": "do-nothing threshold, never shown itself",
                         "components": components}
            elif i not in contenders:
                item |= {"stage": "arbitration", "reason": "cannot reach the top with meaningful probability",
                         "components": components}
            else:
                item |= {"stage": "arbitration", "reason": "ranked below the limit or the do-nothing threshold",
                         "components": components}
        out.append(item)
    return out


def _failed_layer(action: Any, facts: Facts) -> dict[str, str]:
    for stage, source, cond in action.layers:
        file, _, key = source.partition(": ")
        why = first_failure(cond, facts, key)
        if why is not None:
            return {"stage": stage, "reason": why, "rule": file}
    return {"stage": "eligibility", "reason": "not eligible"}


def facts_channel(rb: Rulebook, ch: int) -> str:
    return list(rb.channels)[ch]


class _Entropy:
    """os.urandom in blocks: one system call per 400 decision ids instead of one each (a system call is
    what costs most on a virtual machine). Reset in a forked child, which must not repeat its parent's."""

    BLOCK = 4000

    def __init__(self) -> None:
        self._buf = b""
        self._at = 0
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._buf, self._at = b"", 0

    def hex(self, n: int) -> str:
        if self._at + n > len(self._buf):
            self._buf, self._at = os.urandom(self.BLOCK), 0
        self._at += n
        return self._buf[self._at - n:self._at].hex()


_entropy = _Entropy()


def new_decision_id(now: float) -> str:
    """Time-ordered (sorts by creation) and unguessable."""
    return f"{int(now * 1000):012x}{_entropy.hex(10)}"


class Decider:
    def __init__(self, live: Live, store: Store, metrics: Metrics, rng: np.random.Generator,
                 clock: Callable[[], float], deadline: float = 0.25):
        self.live = live
        self.store = store
        self.metrics = metrics
        self.rng = rng
        self.clock = clock
        self.deadline = deadline
        self._locks = KeyedLocks()
        self.tally = arbitration.Tally()  # placement counts per situation: see arbitration
        self._unlogged = 0  # degraded decisions since the last warning
        self._logged_at = -DEGRADED_LOG_SECONDS

    async def decide(self, req: DecideRequest) -> Decision:
        """Within `deadline` seconds, or a degraded answer: when Redis is slow or down, the channel gets
        the order the rules alone imply for an unknown customer (no profile, so no offer that needs
        consent or segments; no history, so nothing recorded), marked `degraded: true`, instead of an
        error or a wait that slows the page."""
        # At the deadline the decision stops waiting for Redis (its reply is read and dropped by the
        # shared connection). A decision stopped while waiting to read records nothing; one stopped while
        # its record script is on the way may still be recorded (Redis cannot take it back), exactly as if
        # the answer had been lost in transit: its reservations expire, its actions earn nothing. Time this
        # process itself was stalled is given back (concurrency.Deadline): the reply may be waiting unread.
        try:
            async with Deadline(self.deadline, on_stall=self.metrics.decision_stalls.inc):
                return await self._decide(req)
        except TimeoutError:
            return self._degraded(req, TimeoutError(f"no answer from Redis within {self.deadline * 1000:.0f} ms"))
        except (RedisError, OSError, StoredDataUnreadable) as exc:  # the store reported an unreadable profile
            return self._degraded(req, exc)

    def _degraded(self, req: DecideRequest, why: BaseException) -> Decision:
        self.metrics.child(self.metrics.decisions, req.channel, "degraded").inc()
        # one line per DEGRADED_LOG_SECONDS: while Redis is down every decision degrades, and a warning
        # each would flood the log (and cost the CPU the degraded answers are meant to save)
        self._unlogged += 1
        at = time.monotonic()
        if at - self._logged_at >= DEGRADED_LOG_SECONDS:
            log.warning("%d degraded decision(s) since the last warning; the latest for %s: %r",
                        self._unlogged, req.customer_id, why)
            self._unlogged, self._logged_at = 0, at
        now = self.clock()
        anonymous = CustomerSnapshot(None, None, None, b"")
        ranked = rank(self.live.snapshot, anonymous, req, now, self.rng, new_decision_id(now), explore=False)
        return replace(ranked.decision, degraded=True)

    async def _decide(self, req: DecideRequest) -> Decision:
        """Read, rank, record-if-unchanged: decisions of one customer are serialised (in this process by
        a lock, across processes by the history version), so caps hold under concurrent requests."""
        async with self._locks.hold(req.customer_id):
            for attempt in range(RECORD_ATTEMPTS):
                if attempt:  # another process recorded first: back off a little so one of us wins
                    await asyncio.sleep(random.uniform(0, 0.002 * attempt))
                snap = self.live.snapshot
                now = self.clock()
                customer = await self.store.read_customer(req.customer_id, req.contact_id)
                ranked = rank(snap, customer, req, now, self.rng, new_decision_id(now), tally=self.tally,
                              bad=partial(self.store.unreadable, "history_entry", req.customer_id))
                d = ranked.decision
                recorded = await self.store.record_decision(
                    req.customer_id, d.decision_id, int(now * 1000), orjson.dumps(ranked.record),
                    [(a.action_id, ranked.meta) for a in d.actions], channel=req.channel,
                    version=customer.version, contact_id=req.contact_id,
                    contact_ttl=snap.rulebook.contact.within if snap.rulebook.contact else 0)
                if recorded is not Recorded.CHANGED:  # an erased customer's answer is given, not recorded
                    self.metrics.child(self.metrics.decisions, req.channel, "actions" if d.actions else "empty").inc()
                    return d
                self.metrics.decision_conflicts.inc()
        self.metrics.child(self.metrics.decisions, req.channel, "conflict").inc()
        raise Unavailable(f"customer {req.customer_id} changed {RECORD_ATTEMPTS} times while deciding; retry",
                          code="customer_busy")
