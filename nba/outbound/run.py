"""An outbound run: for a population on a channel, choose each customer's actions within the channel's
capacity for the day (capacity.py), report what was chosen, what capacity cut and how the choice compares
with first-come and with no capacity at all; a real run also records each selection as a decision (so an
answer on any channel credits it), counts it against the day's capacity, writes the lines lead management
sends, and publishes the channel's capacity price for real-time decisions.

Phases: read (every customer of the population, as decide reads them, scored by candidates.py), select
(pure numpy), record (a real run: each customer read again and recorded by compare-and-set, as decide
records; a customer whose data changed so that a chosen action no longer qualifies is left out and
counted), report.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
import orjson

from nba.concurrency import run_bounded
from nba.decision.ids import new_decision_id
from nba.decision.rank import RESERVATION_SECONDS, ranked_action
from nba.domain import Decision, iso_utc, zoned_time
from nba.errors import Conflict, FieldError, InvalidRequest, StoredDataUnreadable
from nba.learning.record import Meta, decision_record
from nba.learning.snapshot import Snapshot
from nba.outbound import capacity
from nba.outbound.candidates import Candidates, candidates
from nba.rules.rulebook import Channel, Rulebook
from nba.store.contract import DecisionWrite, Recorded, Storage

READ_BATCH = 1000  # customers read at once (the store pipelines them)
YIELD_EVERY = 100  # customers scored between two chances for a server's other requests (about 6 ms)
RECORD_CONCURRENCY = 256
RECORD_ATTEMPTS = 5
LOCK_MS = 60_000  # the channel's run lock; renewed every LOCK_MS / 3 while the run lives
EXAMPLES = 10  # sentences on why something was not chosen, in the report
MAX_LIST = 1_000_000  # customers a list population may name
MAX_SEND_AHEAD = 366 * 86400  # a run may send at most a year ahead
Sink = Callable[[list[dict[str, Any]]], Awaitable[None]]


@dataclass(frozen=True)
class RunRequest:
    channel: str
    segment: str | None = None  # only the customers in this segment
    customer_ids: tuple[str, ...] | None = None  # only these customers (else: everyone with a profile)
    dry_run: bool = False
    send_at: float | None = None  # the earliest send time (default: now), moved out of quiet hours
    budget: float | None = None  # what the run's selections may cost in total (actions' `cost`)
    per_customer: int | None = None  # actions per customer (default: the channel's default_limit)
    include: tuple[str, ...] = ()  # profile attributes copied into each selection line (an address)

    def as_doc(self) -> dict[str, Any]:
        """As a run's document keeps it (a customer list by its length only)."""
        return {
            "channel": self.channel,
            "segment": self.segment,
            "customers": None if self.customer_ids is None else len(self.customer_ids),
            "dry_run": self.dry_run,
            "send_at": None if self.send_at is None else iso_utc(self.send_at),
            "budget": self.budget,
            "per_customer": self.per_customer,
            "include": list(self.include),
        }


def check(rb: Rulebook, req: RunRequest) -> None:
    """Refuse a request the rules cannot run, naming the field (InvalidRequest)."""
    errors: list[FieldError] = []
    channel = rb.channels.get(req.channel)
    if channel is None:
        errors.append(
            FieldError("channel", f"unknown channel {req.channel!r}; the rules have {', '.join(rb.channels)}")
        )
    if req.segment is not None:
        seg = next((s for s in rb.segments if s.name == req.segment), None)
        if seg is None:
            errors.append(FieldError("segment", f"unknown segment {req.segment!r}"))
        elif seg.kind == "context":
            errors.append(FieldError("segment", f"{req.segment} depends on the request's context; a run has none"))
    if req.per_customer is not None and channel is not None and not 1 <= req.per_customer <= channel.max_limit:
        errors.append(FieldError("per_customer", f"must be 1 to the channel's max_limit {channel.max_limit}"))
    if req.budget is not None and not req.budget >= 0:
        errors.append(FieldError("budget", "must be a number >= 0"))
    for i, name in enumerate(req.include):
        if name not in rb.attributes:
            errors.append(FieldError(f"include[{i}]", f"unknown attribute {name!r}"))
    if req.customer_ids is not None and len(req.customer_ids) > MAX_LIST:
        errors.append(FieldError("customer_ids", f"at most {MAX_LIST:,} customers; use a segment or everyone"))
    if errors:
        raise InvalidRequest("the outbound run cannot be made", errors=errors)


def send_time(channel: Channel, now: float, asked: float | None) -> float:
    at = max(now, asked or now)
    return channel.quiet_hours.next_open(at) if channel.quiet_hours is not None else at


def local_day_start(channel: Channel, ts: float) -> float:
    zone = ZoneInfo(channel.timezone)
    return dt.datetime.combine(dt.datetime.fromtimestamp(ts, zone).date(), dt.time(0), zone).timestamp()


def parse_send_time(text: str, now: float) -> float | str:
    """An asked send time: epoch seconds, or what is wrong with it. ISO 8601 with its zone, at most
    MAX_SEND_AHEAD ahead; a time already past means now."""
    parsed = zoned_time(text)
    if parsed is None:
        return "must be an ISO 8601 time with its zone, such as 2026-12-03T09:00:00+01:00"
    try:
        ts = parsed.timestamp()
    except (OverflowError, ValueError):
        return "is out of range"
    if ts > now + MAX_SEND_AHEAD:
        return "is more than a year ahead"
    return max(ts, now)


def local_day(channel: Channel, ts: float) -> tuple[str, float]:
    """The channel's day of `ts` (YYYY-MM-DD) and when it ends (epoch seconds)."""
    zone = ZoneInfo(channel.timezone)
    day = dt.datetime.fromtimestamp(ts, zone).date()
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), zone)
    return day.isoformat(), end.timestamp()


@dataclass
class Progress:
    phase: str = "reading"
    customers_read: int = 0
    customers_recorded: int = 0
    to_record: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "customers_read": self.customers_read,
            "customers_recorded": self.customers_recorded,
            "to_record": self.to_record,
        }


@dataclass
class _Population:
    """What the read phase gathered: customer i's id, key and arm; the candidate pairs."""

    ids: list[str] = field(default_factory=list)
    keys: list[int] = field(default_factory=list)
    arms: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    pair_customer: list[np.ndarray] = field(default_factory=list)
    pair_action: list[np.ndarray] = field(default_factory=list)
    pair_score: list[np.ndarray] = field(default_factory=list)
    pair_propensity: list[np.ndarray] = field(default_factory=list)
    pairs: capacity.Pairs | None = None  # once read: the pairs in customer order ...
    propensity: np.ndarray = field(default_factory=lambda: np.zeros(0))  # ... and their propensities
    unknown: int = 0  # listed, without a profile
    unreadable: int = 0  # their stored profile cannot be parsed
    outside: int = 0  # not in the segment
    closed: Counter[str] = field(default_factory=Counter)  # the channel's gate (consent), by reason

    def finish(self, actions: int) -> capacity.Pairs:
        """The pairs gathered, as one array each (customers were read in order)."""

        def cat(parts: list[np.ndarray], kind: type) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0, kind)

        self.pairs = capacity.Pairs(
            cat(self.pair_customer, np.int64),
            cat(self.pair_action, np.int64),
            cat(self.pair_score, np.float64),
            len(self.ids),
            actions,
        )
        self.propensity = cat(self.pair_propensity, np.float64)
        self.pair_customer, self.pair_action, self.pair_score, self.pair_propensity = [], [], [], []
        return self.pairs

    @property
    def read_pairs(self) -> capacity.Pairs:
        if self.pairs is None:
            raise RuntimeError("the population is still being read")
        return self.pairs


class Compared(NamedTuple):
    chosen: np.ndarray  # what the run takes
    first_come: np.ndarray
    capacity_free: np.ndarray
    method: str  # prices | first_come, whichever totals more


class OutboundRun:
    """One run. `run()` does it all; `progress` says how far it got (the job API reads it)."""

    def __init__(
        self,
        store: Storage,
        snapshot: Callable[[], Snapshot],
        req: RunRequest,
        *,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
        run_id: str | None = None,
    ):
        self.store = store
        self.snapshot = snapshot
        self.req = req
        self.clock = clock
        self.rng = np.random.default_rng(seed)
        self.run_id = run_id or new_run_id(clock())
        self.progress = Progress()
        self._token = secrets.token_hex(8)
        self._held = False

    async def acquire(self) -> None:
        """Take the lock of real runs (Conflict when another holds it): the HTTP job takes it before it
        answers, so a second real run is refused there and then. A dry run needs none."""
        if self.req.dry_run or self._held:
            return
        if not await self.store.lock_outbound(self._token, LOCK_MS):
            raise Conflict(
                "another real outbound run is in progress (one at a time: runs on different channels share "
                "actions' volumes); try again when it is done",
                code="run_in_progress",
            )
        self._held = True

    async def run(self, sink: Sink | None = None) -> dict[str, Any]:
        """The report; the selection lines go to `sink` (a dry run's too, without decision ids)."""
        snap = self.snapshot()
        check(snap.rulebook, self.req)
        await self.acquire()
        if self.req.dry_run:
            return await self._run(snap, sink)
        renew = asyncio.ensure_future(self._renew())
        try:
            return await self._run(snap, sink)
        finally:
            renew.cancel()
            await asyncio.gather(renew, return_exceptions=True)
            await self.store.unlock_outbound(self._token)
            self._held = False

    async def release(self) -> None:
        """Give the lock back without running (a job that could not start)."""
        if self._held:
            await self.store.unlock_outbound(self._token)
            self._held = False

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(LOCK_MS / 3000)
            await self.store.lock_outbound(self._token, LOCK_MS)

    async def _run(self, snap: Snapshot, sink: Sink | None) -> dict[str, Any]:
        rb, req = snap.rulebook, self.req
        channel = rb.channels[req.channel]
        started = self.clock()
        t0 = time.monotonic()
        at = send_time(channel, started, req.send_at)
        day, day_ends = local_day(channel, at)
        used = await self.store.outbound_used(req.channel, day)
        per_customer = req.per_customer or channel.default_limit
        pop = await self._read(snap, at)
        t1 = time.monotonic()
        self.progress.phase = "selecting"
        pairs = pop.finish(len(rb.actions))
        caps = capacities(rb, req, used)
        # numpy in a thread: in a server process, decisions go on meanwhile (1M customers: several seconds)
        solved = await asyncio.to_thread(capacity.solve, pairs, caps, per_customer)
        chosen_sel, chosen = solved.selection, solved.chosen
        free = await asyncio.to_thread(capacity.unconstrained, pairs, per_customer)
        t2 = time.monotonic()
        report = self._report(rb, pop, caps, chosen_sel, Compared(chosen, solved.first_come, free, solved.method))
        report.update(
            run_id=self.run_id,
            channel=req.channel,
            dry_run=req.dry_run,
            started_at=iso_utc(started),
            send_at=iso_utc(at),
            day=day,
            per_customer=per_customer,
            rules_version=rb.version,
            model_version=snap.model.version,
            population=self._population(pop),
        )
        self.progress.phase = "recording" if not req.dry_run else "writing"
        planned = _counts(rb.action_ids[pairs.action[chosen]].tolist())
        if not req.dry_run:
            # taken before anything is recorded, given back for what was not: a run that dies half-way
            # leaves the day's capacity counted as if it had recorded all (never more than it may)
            await self.store.add_outbound_used(req.channel, day, planned)
        try:
            recorded = await self._record(snap, pop, chosen, at, sink, hold_until=day_ends)
        except BaseException:
            if not req.dry_run:
                self.progress.phase = "failed"  # what it recorded stays counted with the rest of its plan
            raise
        t3 = time.monotonic()
        if not req.dry_run:
            unused = planned - _counts(recorded["actions"])
            if unused:
                await self.store.add_outbound_used(req.channel, day, {k: -n for k, n in unused.items()})
            if channel.capacity is not None and channel.capacity.real_time:
                price = float(chosen_sel.prices[0]) if caps and caps[0].name.startswith("channel ") else 0.0
                day_starts = local_day_start(channel, at)
                doc = {
                    "price": price,
                    "from_ms": int(day_starts * 1000),
                    "until_ms": int(day_ends * 1000),
                    "run_id": self.run_id,
                }
                await self.store.set_capacity_price(req.channel, day, orjson.dumps(doc), int(self.clock() * 1000))
        report["recorded"] = {k: v for k, v in recorded.items() if k != "actions"}
        report["seconds"] = {
            "read": round(t1 - t0, 3),
            "select": round(t2 - t1, 3),
            "record" if not req.dry_run else "write": round(t3 - t2, 3),
            "total": round(t3 - t0, 3),
        }
        report["finished_at"] = iso_utc(self.clock())
        self.progress.phase = "done"
        return report

    # ------------------------------------------------------------------------------------- read

    async def _population_ids(self) -> AsyncIterator[list[str]]:
        if self.req.customer_ids is not None:
            ids = list(dict.fromkeys(self.req.customer_ids))
            for i in range(0, len(ids), READ_BATCH):
                yield ids[i : i + READ_BATCH]
        else:
            async for batch in self.store.customers_with_profiles(READ_BATCH):
                yield batch

    async def _read(self, snap: Snapshot, at: float) -> _Population:
        pop = _Population()
        seen: set[str] = set()  # SCAN may return a key twice (while Redis rehashes)
        async for batch in self._population_ids():
            batch = [c for c in batch if c not in seen]
            seen.update(batch)
            snapshots = await self.store.read_customers(batch)
            found: list[tuple[int, Candidates]] = []
            for cid, data in zip(batch, snapshots, strict=True):
                self.progress.customers_read += 1
                if self.progress.customers_read % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # a server's other requests wait at most this many customers
                if isinstance(data, StoredDataUnreadable):
                    pop.unreadable += 1  # counted and logged by the store; PUT or DELETE mends it
                    continue
                if data.attributes is None:
                    pop.unknown += 1
                    continue
                c = candidates(snap, cid, data, self.req.channel, at, self.rng)
                if self.req.segment is not None and self.req.segment not in c.member:
                    pop.outside += 1
                    continue
                if c.gate is not None:
                    pop.closed[c.gate] += 1
                i = len(pop.ids)
                pop.ids.append(cid)
                pop.keys.append(c.key)
                pop.arms.append(c.arm)
                pop.features.append(c.features)
                if c.actions.shape[0]:
                    found.append((i, c))
            if found:  # one array per batch, not per customer: a small array costs about 100 bytes
                pop.pair_customer.append(np.repeat([i for i, _ in found], [c.actions.shape[0] for _, c in found]))
                pop.pair_action.append(np.concatenate([c.actions for _, c in found]))
                pop.pair_score.append(np.concatenate([c.score for _, c in found]))
                pop.pair_propensity.append(np.concatenate([c.propensity for _, c in found]))
        return pop

    # ----------------------------------------------------------------------------------- record

    async def _record(
        self,
        snap: Snapshot,
        pop: _Population,
        chosen: np.ndarray,
        at: float,
        sink: Sink | None,
        *,
        hold_until: float,
    ) -> dict[str, Any]:
        """Record each customer's chosen actions as one decision (a real run) and hand the lines to `sink`."""
        pairs = pop.read_pairs
        by_customer: dict[int, list[int]] = {}
        for p in chosen[np.argsort(-pairs.score[chosen], kind="stable")].tolist():
            by_customer.setdefault(int(pairs.customer[p]), []).append(p)
        self.progress.to_record = len(by_customer)
        out: dict[str, Any] = {"decisions": 0, "changed": 0, "erased": 0, "actions": []}
        lines: list[dict[str, Any]] = []

        async def flush(final: bool = False) -> None:
            if sink is not None and lines and (final or len(lines) >= 1000):
                batch = lines[:]
                lines.clear()
                await sink(batch)

        async def one(i: int, ps: list[int]) -> None:
            cid = pop.ids[i]
            d, attrs = await self._record_one(snap, pop, i, ps, (at, hold_until), out)
            if d is None:
                return
            for a in d.actions:
                line: dict[str, Any] = {
                    "run_id": self.run_id,
                    "decision_id": None if self.req.dry_run else d.decision_id,
                    "customer_id": cid,
                    "channel": self.req.channel,
                    "action_id": a.action_id,
                    "rank": a.rank,
                    "send_at": iso_utc(at),
                    "score": round(a.score, 6),
                    "propensity": round(a.propensity, 6),
                    "value": a.value,
                    "content": a.content,
                    "reason": a.reason,
                }
                for name in self.req.include:
                    line[name] = attrs.get(name)
                lines.append(line)
                out["actions"].append(a.action_id)
            self.progress.customers_recorded += 1
            await flush()

        await run_bounded((one(i, ps) for i, ps in by_customer.items()), RECORD_CONCURRENCY)
        await flush(final=True)
        return out

    async def _record_one(
        self,
        snap: Snapshot,
        pop: _Population,
        i: int,
        ps: list[int],
        when: tuple[float, float],
        out: dict[str, Any],
    ) -> tuple[Decision | None, dict[str, Any]]:
        """Customer i's chosen pairs `ps` as one decision, recorded unless this is a dry run."""

        rb = snap.rulebook
        cid = pop.ids[i]
        at, hold_until = when
        wanted = [int(pop.read_pairs.action[p]) for p in ps]
        for _ in range(RECORD_ATTEMPTS):
            now = self.clock()
            try:
                data = await self.store.read_customer(cid)
            except StoredDataUnreadable:  # damaged since it was read: left out, as if it had changed
                break
            attrs = data.attributes or {}
            if self.req.dry_run:
                keep = list(zip(wanted, ps, strict=True))
            else:
                if data.attributes is None:
                    out["erased"] += 1
                    return None, {}
                still = set(candidates(snap, cid, data, self.req.channel, at, self.rng).actions.tolist())
                keep = [(a, p) for a, p in zip(wanted, ps, strict=True) if a in still]
                if not keep:
                    out["changed"] += 1
                    return None, {}
            d = self._decision(snap, pop, i, keep, attrs, now)
            if self.req.dry_run:
                return d, attrs
            cl = rb.learning.for_channel(self.req.channel)
            meta = Meta(
                self.req.channel,
                rb.learning.keys[pop.keys[i]],
                pop.arms[i],
                int((at + cl.attribution_window) * 1000),
                rb.learning.features.signature,
                pop.features[i],
            )
            record = decision_record(
                d,
                [a.action_id for a in d.actions],
                [a.action_id for a in d.actions],
                [a.propensity for a in d.actions],
                meta,
                cl.model,
            )
            record.update(probability_kind="deterministic", outbound_run=self.run_id, send_at=iso_utc(at))
            recorded = await self.store.record_decision(
                cid,
                data.version,
                DecisionWrite(
                    d.decision_id,
                    int(now * 1000),
                    orjson.dumps(record),
                    [(a.action_id, meta.text()) for a in d.actions],
                    self.req.channel,
                    anonymous_ttl=0,
                    # a reservation counts as an impression for RESERVATION_SECONDS from its time: this
                    # one holds the caps from now to the end of the send day, whenever lead management
                    # sends it that day (its impression then takes the reservation's place)
                    reserve_from_ms=int(max(at, hold_until - RESERVATION_SECONDS) * 1000),
                ),
            )
            if recorded is Recorded.RECORDED:
                out["decisions"] += 1
                return d, attrs
            if recorded is not Recorded.CHANGED:  # erased meanwhile
                out["erased"] += 1
                return None, {}
        out["changed"] += 1
        return None, {}

    def _decision(
        self,
        snap: Snapshot,
        pop: _Population,
        i: int,
        keep: Sequence[tuple[int, int]],
        attrs: dict[str, Any],
        now: float,
    ) -> Decision:
        rb, pairs, propensity = snap.rulebook, pop.read_pairs, pop.propensity

        # the run's choice is deterministic given the data and the prices: probability 1
        ranked = [
            ranked_action(rb, a, r + 1, float(pairs.score[p]), float(propensity[p]), 1.0, attrs)
            for r, (a, p) in enumerate(keep)
        ]
        return Decision(
            decision_id=new_decision_id(now),
            customer_id=pop.ids[i],
            channel=self.req.channel,
            actions=ranked,
            segments=[],
            rules_version=rb.version,
            model_version=snap.model.version,
            segment_key=rb.learning.keys[pop.keys[i]],
            ts=now,
        )

    # ----------------------------------------------------------------------------------- report

    def _population(self, pop: _Population) -> dict[str, Any]:
        req = self.req
        kind = "list" if req.customer_ids is not None else "everyone"
        return {
            "kind": kind,
            "segment": req.segment,
            "read": self.progress.customers_read,
            "customers": len(pop.ids),
            "without_profile": pop.unknown,
            "unreadable": pop.unreadable,
            "outside_segment": pop.outside,
            "channel_closed": dict(pop.closed),
        }

    def _report(
        self, rb: Rulebook, pop: _Population, caps: list[capacity.Capacity], sel: capacity.Selection, how: Compared
    ) -> dict[str, Any]:
        pairs, propensity = pop.read_pairs, pop.propensity
        chosen, greedy, free, method = how

        value = rb.value[pairs.action]
        n = pairs.customers
        has = np.bincount(pairs.customer, minlength=n) > 0 if n else np.zeros(0, bool)
        got = np.bincount(pairs.customer[chosen], minlength=n) > 0 if n else np.zeros(0, bool)
        free_got = np.bincount(pairs.customer[free], minlength=n) > 0 if n else np.zeros(0, bool)

        def totals(idx: np.ndarray) -> dict[str, Any]:
            return {
                "selected": int(idx.shape[0]),
                "score": round(float(pairs.score[idx].sum()), 6),
                "expected_accepts": round(float(propensity[idx].sum()), 3),
                "expected_value": round(float((propensity[idx] * value[idx]).sum()), 2),
            }

        per_action: list[dict[str, Any]] = []
        chosen_n = np.bincount(pairs.action[chosen], minlength=pairs.actions)
        free_n = np.bincount(pairs.action[free], minlength=pairs.actions)
        for a in np.flatnonzero(chosen_n | free_n).tolist():
            mask = pairs.action[chosen] == a
            per_action.append(
                {
                    "action_id": rb.actions[a].id,
                    "selected": int(chosen_n[a]),
                    "without_capacity": int(free_n[a]),
                    "expected_accepts": round(float(propensity[chosen][mask].sum()), 3),
                    "expected_value": round(float((propensity[chosen][mask] * value[chosen][mask]).sum()), 2),
                }
            )
        per_action.sort(key=lambda x: (-x["selected"], x["action_id"]))
        examples = []
        blocked = (
            np.flatnonzero(capacity.blocking(pairs, sel, caps) & ~got[pairs.customer]) if n else np.zeros(0, np.int64)
        )
        for p in blocked[np.argsort(-pairs.score[blocked], kind="stable")][:EXAMPLES].tolist():
            examples.append(
                {
                    "customer_id": pop.ids[int(pairs.customer[p])],
                    "action_id": rb.actions[int(pairs.action[p])].id,
                    "why": capacity.why_not(p, pairs, sel, caps),
                }
            )
        chosen_total = float(pairs.score[chosen].sum())
        return {
            "customers": {
                "in_population": n,
                "with_candidates": int(has.sum()),
                "nothing_eligible": int(n - has.sum()),
                "selected": int(got.sum()),
                "cut_by_capacity": int((free_got & ~got).sum()),
            },
            "totals": totals(chosen),
            "actions": per_action,
            "capacities": [
                {
                    "name": c.name,
                    "limit": c.limit,
                    "used": float(u),
                    "price": round(float(p), 6),
                    "binding": bool(p > 0),
                }
                for c, u, p in zip(caps, capacity.use(pairs, chosen, caps), sel.prices, strict=True)
            ],
            "comparison": {
                "method": method,
                "chosen": totals(chosen),
                "first_come": totals(greedy),
                "capacity_free": totals(free),
                "upper_bound_score": round(sel.bound, 6),
                "share_of_upper_bound": round(chosen_total / sel.bound, 6) if sel.bound > 0 else 1.0,
                "price_passes": sel.passes,
            },
            "not_chosen_examples": examples,
        }


def capacities(rb: Rulebook, req: RunRequest, used: dict[str, int]) -> list[capacity.Capacity]:
    """The run's limits: the channel's capacity left for the day first, each action's volume left, the
    budget."""
    channel = rb.channels[req.channel]
    n = len(rb.actions)
    out = []
    if channel.capacity is not None:
        out.append(
            capacity.Capacity(
                f"channel {req.channel}", np.ones(n), float(max(0, channel.capacity.per_day - used.get("*", 0)))
            )
        )
    on_channel = rb.channel_ok[:, rb.channel_index[req.channel]]
    for a, action in enumerate(rb.actions):
        if action.volume is not None and on_channel[a]:
            w = np.zeros(n)
            w[a] = 1.0
            out.append(
                capacity.Capacity(f"action {action.id}", w, float(max(0, action.volume - used.get(action.id, 0))))
            )
    if req.budget is not None:
        out.append(capacity.Capacity("budget", rb.cost.copy(), float(req.budget)))
    return out


def _counts(action_ids: list[str]) -> Counter[str]:
    """Selections per action, and `*` for all of them."""
    out = Counter(action_ids)
    out["*"] = len(action_ids)
    return out


def new_run_id(now: float) -> str:
    """Time-ordered, unguessable enough for a list nobody may read without a key: 12 hex of ms, 8 random."""
    return "run-" + new_decision_id(now)[:20]


CSV_COLUMNS = (
    "run_id",
    "decision_id",
    "customer_id",
    "channel",
    "action_id",
    "rank",
    "send_at",
    "score",
    "propensity",
    "value",
    "reason",
    "content",  # as JSON
)


def csv_text(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


def csv_row(line: dict[str, Any], include: Sequence[str]) -> list[str]:
    """A selection line as a CSV row: CSV_COLUMNS, then the included attributes."""
    cells = []
    for k in (*CSV_COLUMNS, *include):
        v = line.get(k)
        cells.append("" if v is None else orjson.dumps(v).decode() if isinstance(v, dict | list) else str(v))
    return cells
