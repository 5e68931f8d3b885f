"""Deciding for one customer: one Redis read, the pure ranking (rank.py), one write that records the
decision and reserves what it returns, within a deadline, else a degraded answer from the rules alone.
A request with a request_id first looks for the answer it already got (repeats.py), in the same round
trip as the read."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import numpy as np
import orjson
from redis.exceptions import RedisError

from nba.concurrency import Deadline, KeyedLocks
from nba.decision import repeats
from nba.decision.arbitration import Situations
from nba.decision.ids import new_decision_id
from nba.decision.rank import How, rank
from nba.domain import DecideRequest, Decision
from nba.errors import Conflict, FieldError, StoredDataUnreadable, Unavailable
from nba.live import Live
from nba.metrics import Metrics
from nba.store.contract import CustomerSnapshot, DecisionWrite, Recorded, RequestMark, Storage, StoredRequest

RECORD_ATTEMPTS = 10
DEGRADED_LOG_SECONDS = 10.0
log = logging.getLogger(__name__)


class Decider:
    def __init__(
        self,
        live: Live,
        store: Storage,
        metrics: Metrics,
        rng: np.random.Generator,
        clock: Callable[[], float],
        deadline: float = 0.25,
    ):
        self.live = live
        self.store = store
        self.metrics = metrics
        self.rng = rng
        self.clock = clock
        self.deadline = deadline
        self._locks = KeyedLocks()
        self.situations = Situations()  # arbitration situations of the per-segment model, per process
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
            log.warning(
                "%d degraded decision(s) since the last warning; the latest for %s: %r",
                self._unlogged,
                req.customer_id,
                why,
            )
            self._unlogged, self._logged_at = 0, at
        now = self.clock()
        anonymous = CustomerSnapshot(req.profile, None, None, b"")  # a dry run's made-up profile needs no Redis
        ranked = rank(self.live.snapshot, anonymous, req, now, new_decision_id(now), How(self.rng, explore=False))
        return replace(ranked.decision, degraded=True)

    async def _decide(self, req: DecideRequest) -> Decision:
        """Read, rank, record-if-unchanged: decisions of one customer are serialised (in this process by
        a lock, across processes by the history version), so caps hold under concurrent requests."""
        remember = req.request_id is not None and not req.dry_run  # a preview remembers nothing
        async with self._locks.hold(req.customer_id):
            for attempt in range(RECORD_ATTEMPTS):
                if attempt:  # another process recorded first: back off a little so one of us wins
                    await asyncio.sleep(random.uniform(0, 0.002 * attempt))
                snap = self.live.snapshot
                now = self.clock()
                if remember:
                    found, customer = await asyncio.gather(
                        self.store.find_request(req.customer_id, req.request_id or "", int(now * 1000)),
                        self.store.read_customer(req.customer_id, req.contact_id),
                    )
                    if found is not None:
                        return self._repeat(req, found)
                else:
                    customer = await self.store.read_customer(req.customer_id, req.contact_id)
                if req.profile is not None:  # a dry run on a made-up profile: its segments, the stored history
                    customer = replace(customer, attributes=req.profile, segments=None, segments_version=None)
                ranked = rank(
                    snap,
                    customer,
                    req,
                    now,
                    new_decision_id(now),
                    How(
                        self.rng,
                        situations=self.situations,
                        bad=partial(self.store.unreadable, "history_entry", req.customer_id),
                        price=self.live.capacity_price(req.channel, now),
                    ),
                )
                d = ranked.decision
                if req.dry_run:
                    self.metrics.child(self.metrics.decisions, req.channel, "dry_run").inc()
                    return replace(d, dry_run=True)
                channel = snap.rulebook.channels[req.channel]
                recorded = await self.store.record_decision(
                    req.customer_id,
                    customer.version,
                    DecisionWrite(
                        d.decision_id,
                        int(now * 1000),
                        orjson.dumps(ranked.record),
                        [(a.action_id, ranked.meta) for a in d.actions],
                        req.channel,
                        req.contact_id,
                        snap.rulebook.contact.within if snap.rulebook.contact else 0,
                        channel.remember_anonymous,
                        request=RequestMark(
                            req.request_id or "",
                            repeats.fingerprint(req),
                            int((now + channel.request_window) * 1000),
                            repeats.answer(d),
                        )
                        if remember
                        else None,
                    ),
                )
                if recorded is Recorded.REPEATED:  # a twin request was recorded first: the next round finds it
                    continue
                # an erased customer's answer is given, not recorded; nor that of an anonymous visitor on a
                # channel that does not remember them
                if recorded is not Recorded.CHANGED:
                    self.metrics.child(self.metrics.decisions, req.channel, "actions" if d.actions else "empty").inc()
                    if recorded is Recorded.RECORDED:  # only these can earn anything
                        self.metrics.count_proposals(req.channel, ranked.arm, (a.action_id for a in d.actions))
                    return d
                self.metrics.decision_conflicts.inc()
        self.metrics.child(self.metrics.decisions, req.channel, "conflict").inc()
        raise Unavailable(
            f"customer {req.customer_id} changed {RECORD_ATTEMPTS} times while deciding; retry", code="customer_busy"
        )

    def _repeat(self, req: DecideRequest, found: StoredRequest) -> Decision:
        """The answer a request_id already got, if this is the same request again."""
        if found.fingerprint != repeats.fingerprint(req):
            raise Conflict(
                f"request_id {req.request_id} already named another request for customer {req.customer_id} "
                f"(decision {found.decision_id}); a repeat must have the same channel, context, limit, "
                "contact_id and explain: send a new request_id for a new request",
                code="request_id_reused",
                errors=[FieldError("request_id", "already used for a different request")],
            )
        try:
            d = repeats.repeated(found.answer)
        except (ValueError, KeyError, TypeError) as exc:  # not an answer nba wrote: degraded, as for a profile
            self.store.unreadable("decision_answer", f"{req.customer_id} {found.decision_id}", found.answer)
            raise StoredDataUnreadable(f"the stored answer of decision {found.decision_id} cannot be read") from exc
        self.metrics.child(self.metrics.decisions, req.channel, "repeat").inc()
        return d
