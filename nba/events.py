"""Event ingestion: one path for HTTP and replay. Validated batches go to the customers' histories
and decision records atomically per customer; credited answers then move the model statistics."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from nba.domain import EventIn
from nba.live import Live
from nba.metrics import Metrics
from nba.store.redis import EventArgs, Store


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    credited: int  # answered a logged decision: learned from
    unattributed: int  # referred to a decision that expired or did not rank that action


class EventIngest:
    def __init__(self, live: Live, store: Store, metrics: Metrics):
        self.live = live
        self.store = store
        self.metrics = metrics

    async def ingest(self, events: list[EventIn]) -> IngestResult:
        rewards = self.live.snapshot.rulebook.learning.rewards
        by_customer: dict[str, list[EventArgs]] = defaultdict(list)
        for e in events:
            by_customer[e.customer_id].append(EventArgs(
                e.event_id, int(e.ts * 1000), e.type, e.action_id, e.channel, e.decision_id,
                rewards.get(e.type, 0.0)))
        outcomes = await self.store.apply_events(by_customer)
        deltas: dict[tuple[str, str], tuple[float, float]] = {}
        counts: dict[tuple[str, str], int] = defaultdict(int)
        tally: dict[str, int] = defaultdict(int)
        for cid, results in outcomes.items():
            for args, out in zip(by_customer[cid], results, strict=True):
                tally[out.status] += 1
                self.metrics.events.labels(args.type, out.status).inc()
                if out.status == "dup":
                    continue
                counts[(args.action_id, args.type)] += 1
                if out.status == "credited" and (out.trials or out.reward):
                    n, r = deltas.get((args.action_id, out.segment_key), (0.0, 0.0))
                    deltas[(args.action_id, out.segment_key)] = (n + out.trials, r + out.reward)
        # Between the customer scripts above and this call a crash would lose these increments (never
        # double them: a retried batch is all duplicates). The learner of the roadmap closes the gap.
        await self.store.add_to_model(deltas, counts)
        return IngestResult(
            accepted=len(events) - tally["dup"], duplicates=tally["dup"], credited=tally["credited"],
            unattributed=tally["unattributed"],
        )
