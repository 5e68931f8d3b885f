"""A few days of simulated traffic for the demo, so that a fresh `make run` has a past: the steering
board's charts, `/v1/actions/stats` and the model have something to show.

Nothing is written behind the server's back. The past is walked hour by hour; each visit of the
simulated world (customers/demo_world.py) asks the real Decider, whose clock says the simulated time, so
eligibility, caps, quiet hours, the control group and the model apply as they do in real life and the
decision is recorded at that time. Each returned action's impression, and the customer's answer drawn
from the world's odds seconds to minutes later, go through the real EventIngest with those past
timestamps; the server's own learner then credits them to their decisions (all within the attribution
windows: an answer comes at most minutes after its decision) and the model learns while the seeding goes
on. Events of a visit reach the history before the customer's next visit, so an accept suppresses as it
would.

Once per Redis: traffic is seeded only into a Redis that has never received an event (no event counted,
nothing in the learner's inbox). A restart of `make run` against the same data seeds nothing again; nor
does a start after seeding was interrupted (what was seeded stays, the past is not completed).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import logging
import time
import zoneinfo
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from redis.exceptions import RedisError

from nba.customers import demo_world as world
from nba.decision.decider import Decider
from nba.domain import DecideRequest, EventIn
from nba.errors import Unavailable
from nba.learning.ingest import EventIngest
from nba.live import Live
from nba.metrics import Metrics
from nba.store.contract import Storage

log = logging.getLogger(__name__)

SEED = 42
ZONE = zoneinfo.ZoneInfo("Europe/Amsterdam")  # the demo telecom's customers' day
# seeding runs beside a serving server: a decision that waits on a busy Redis should wait rather than
# degrade (a degraded answer records nothing, and would be a hole in the past)
DECIDE_DEADLINE = 5.0
ANSWER_DELAY = {"email": (600.0, 3 * 3600.0)}  # an e-mail is read later; a screen or call answers in minutes
DEFAULT_DELAY = (5.0, 900.0)
BATCH = 1000  # the most events one ingest takes (as the HTTP API's batches)
LEARN_PATIENCE = 2.0  # seconds to wait for the learner after a simulated hour (it may be busy or away)


@dataclass
class Seeded:
    """What the seeding did, for its log line and the tests."""

    decisions: Counter[str] = field(default_factory=Counter)  # per channel, recorded decisions
    events: Counter[tuple[str, str]] = field(default_factory=Counter)  # per (channel, event type), sent
    degraded: int = 0  # answered without Redis: nothing recorded
    busy: int = 0  # the customer changed too often while deciding (Unavailable)
    dropped: int = 0  # answers that would come after the end of the seeded past
    first: float | None = None  # the earliest and latest event time
    last: float | None = None

    def line(self) -> str:
        types = Counter[str]()
        for (_, etype), n in self.events.items():
            types[etype] += n
        return (
            f"{sum(self.decisions.values())} decisions ("
            + ", ".join(f"{ch} {n}" for ch, n in sorted(self.decisions.items()))
            + "), events: "
            + ", ".join(f"{n} {t}" for t, n in sorted(types.items()))
        )


async def already_seeded(store: Storage) -> bool:
    """Whether this Redis ever received an event (then it has a past of its own, or was seeded before)."""
    if await store.event_counts():
        return True
    return bool((await store.read_inbox({}, 1)).last)


class DemoTraffic:
    """The simulated past of `population` (customer id, attributes) over the `days` before `end`."""

    def __init__(
        self,
        live: Live,
        store: Storage,
        metrics: Metrics,
        population: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        days: int,
        end: float,
        seed: int = SEED,
    ):
        self.live = live
        self.population = population
        self.days = days
        self.end = end
        visits, answers, decisions = np.random.SeedSequence(seed).spawn(3)
        # separate streams: the visits are the same whatever the model decides, the answers the same for
        # the same decisions
        self._visits = np.random.default_rng(visits)
        self._answers = np.random.default_rng(answers)
        self.now = end - days * 86400.0
        self.decider = Decider(live, store, metrics, np.random.default_rng(decisions), self._clock, DECIDE_DEADLINE)
        self.ingest = EventIngest(store, metrics, self._clock)
        self._pending: list[tuple[float, int, EventIn]] = []  # a heap by time
        self._sequence = 0
        self._calls = 0
        self.seeded = Seeded()

    def _clock(self) -> float:
        return self.now

    async def run(self, after_hour: Callable[[], Awaitable[object]] | None = None) -> Seeded:
        """Walk the past; `after_hour` is awaited after each simulated hour (tests learn then, so that
        every run sees the same model; a server's learner runs by itself)."""
        rb = self.live.snapshot.rulebook
        rates = world.daily_rates([attrs for _, attrs in self.population], list(rb.channels))
        first_hour = int(self.end // 3600) * 3600 - self.days * 86400
        for h in range(self.days * 24):
            start = first_hour + h * 3600.0
            hour = dt.datetime.fromtimestamp(start, ZONE).hour
            for visit in world.hour_visits(self._visits, rates, hour):
                self.now = start + visit.at
                await self._flush(self.now)
                if not await self._visit(visit, hour):
                    return self.seeded  # Redis is away or too slow: stop, what was seeded stays
            self.now = start + 3600.0
            await self._flush(self.now)
            if after_hour is not None:
                await after_hour()
        self.now = self.end
        await self._flush(self.end)
        self.seeded.dropped = len(self._pending)
        self._pending.clear()
        return self.seeded

    async def _visit(self, visit: world.Visit, hour: int) -> bool:
        """Decide for one visit and schedule its events; False when the decision could not use Redis."""
        cid, attrs = self.population[visit.customer]
        channel = self.live.snapshot.rulebook.channels[visit.channel]
        self._calls += 1
        contact = f"demo-call-{self._calls}" if visit.channel == "call_center" else None
        req = DecideRequest(cid, visit.channel, visit.context, channel.default_limit, False, contact)
        try:
            decision = await self.decider.decide(req)
        except Unavailable:
            self.seeded.busy += 1
            return True
        if decision.degraded:
            self.seeded.degraded += 1
            return False
        self.seeded.decisions[visit.channel] += 1
        low, high = ANSWER_DELAY.get(visit.channel, DEFAULT_DELAY)
        for a in decision.actions:
            shown = self.now + float(self._answers.uniform(1.0, 5.0))
            self._send(cid, a.action_id, visit.channel, decision.decision_id, "impression", shown)
            reply = world.answer(self._answers, world.odds(attrs, a.action_id, a.group, visit.channel, hour))
            if reply is None:
                continue
            at = shown + float(self._answers.uniform(low, high))
            if reply == "accept" and world.CLICK_PER_ACCEPT.get(visit.channel, 0.0) > 0:
                # on a screen, an accept is a click first
                self._send(cid, a.action_id, visit.channel, decision.decision_id, "click", (shown + at) / 2)
            self._send(cid, a.action_id, visit.channel, decision.decision_id, reply, at)
        return True

    def _send(self, cid: str, action: str, channel: str, decision_id: str, etype: str, ts: float) -> None:
        event = EventIn(f"demo-{decision_id}-{action}-{etype}", etype, cid, action, channel, decision_id, ts, {})
        self._sequence += 1
        heapq.heappush(self._pending, (ts, self._sequence, event))

    async def _flush(self, until: float) -> None:
        """Send every event that happened by `until`, in batches."""
        due: list[EventIn] = []
        while self._pending and self._pending[0][0] <= until:
            due.append(heapq.heappop(self._pending)[2])
        if not due:
            return
        remember = {c.name: c.remember_anonymous for c in self.live.snapshot.rulebook.channels.values()}
        for i in range(0, len(due), BATCH):
            await self.ingest.ingest(due[i : i + BATCH], remember)
        for e in due:
            self.seeded.events[(e.channel, e.type)] += 1
        s = self.seeded
        s.first = due[0].ts if s.first is None else min(s.first, due[0].ts)
        s.last = due[-1].ts if s.last is None else max(s.last, due[-1].ts)


async def learned(live: Live, store: Storage, patience: float = LEARN_PATIENCE) -> None:
    """Wait (at most `patience` seconds) until the server's learner has applied every event sent, then
    take its model: in the simulated past an hour passes between the hours, and the model learns in it."""
    give_up = time.monotonic() + patience
    while time.monotonic() < give_up:
        if not (await store.read_inbox(await store.learner_position(), 1)).last:
            break
        await asyncio.sleep(0.005)  # the learner wakes on the inbox by itself (a blocking read)
    await live.refresh_model()


async def seed_traffic(
    live: Live,
    store: Storage,
    metrics: Metrics,
    population: Sequence[tuple[str, Mapping[str, Any]]],
    days: int,
    clock: Callable[[], float] = time.time,
) -> Seeded | None:
    """`nba serve --demo-customers N --demo-days D`: the past `days` of the demo, once per Redis (None when
    this Redis has a past already). Logs what it did and how long it took."""
    try:
        if await already_seeded(store):
            log.info("demo traffic: this Redis has received events before; no simulated past seeded")
            return None
    except (RedisError, OSError) as exc:
        log.warning("demo traffic: not seeded, Redis failed: %r", exc)
        return None
    started = time.monotonic()
    log.info("demo traffic: seeding %d simulated day(s) in the background", days)
    traffic = DemoTraffic(live, store, metrics, population, days=days, end=clock())
    try:
        seeded = await traffic.run(lambda: learned(live, store))
    except (RedisError, OSError) as exc:  # a demo's past is not worth taking the server down for
        log.warning("demo traffic: stopped, Redis failed: %r; seeded until then: %s", exc, traffic.seeded.line())
        return traffic.seeded
    if seeded.degraded:
        log.warning("demo traffic: stopped, Redis did not answer in time; seeded until then: %s", seeded.line())
    else:
        took = time.monotonic() - started
        log.info("demo traffic: seeded %d simulated day(s) in %.1f s: %s", days, took, seeded.line())
    return seeded
