"""Event ingestion: one path for HTTP and replay. A validated batch goes to the learner's inbox and to
the customers' histories (atomically per customer); the learner (learning/learner.py) moves the model."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from nba.domain import EventIn
from nba.metrics import Metrics
from nba.store.contract import EventArgs, Storage

NOT_KEPT = frozenset({"dup", "erased", "unknown"})  # apply_events.lua's statuses of events it did not keep


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    credited: int  # answers a decision within its attribution window: the learner learns from it
    unattributed: int  # no decision showed this action, or its attribution window had closed
    erased: int  # for a customer erased within keys.ERASED_SECONDS: accepted, and not kept
    unknown: int = 0  # for a customer without a profile on channels that do not remember them: not kept


class EventIngest:
    def __init__(self, store: Storage, metrics: Metrics, clock: Callable[[], float] = time.time):
        self.store = store
        self.metrics = metrics
        self.clock = clock

    async def ingest(self, events: list[EventIn], remember_anonymous: Mapping[str, int]) -> IngestResult:
        """`remember_anonymous`: channel -> seconds the events of a customer without a profile are kept
        (rulebook.Channel); a customer's events are kept as long as the longest of their channels says."""
        by_customer: dict[str, list[EventArgs]] = defaultdict(list)
        anonymous_ttl: dict[str, int] = {}
        for e in events:
            by_customer[e.customer_id].append(
                EventArgs(e.customer_id, e.event_id, int(e.ts * 1000), e.type, e.action_id, e.channel, e.decision_id)
            )
            ttl = remember_anonymous.get(e.channel, 0)
            if ttl > anonymous_ttl.get(e.customer_id, 0):
                anonymous_ttl[e.customer_id] = ttl
        outcomes = await self.store.apply_events(by_customer, int(self.clock() * 1000), anonymous_ttl)
        tally: dict[str, int] = defaultdict(int)
        for cid, statuses in outcomes.items():
            for args, status in zip(by_customer[cid], statuses, strict=True):
                tally[status] += 1
                # an answer naming a decision that did not show it (or expired) could not be learned from
                if status == "late" or (status == "hist" and args.decision_id is not None):
                    tally["unattributed"] += 1
                self.metrics.child(self.metrics.events, args.type, status).inc()
                if status not in NOT_KEPT:
                    self.metrics.child(self.metrics.action_events, args.action_id, args.channel, args.type).inc()
        return IngestResult(
            accepted=len(events) - tally["dup"] - tally["erased"] - tally["unknown"],
            duplicates=tally["dup"],
            credited=tally["credited"],
            unattributed=tally["unattributed"],
            erased=tally["erased"],
            unknown=tally["unknown"],
        )
