"""The learner's side: the inbox, the lease, crediting events to decisions and committing a batch."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, cast

from nba.store import history, keys, scripts
from nba.store.contract import (
    EventArgs,
    Grant,
    GrantStatus,
    InboxBacklog,
    InboxBatch,
    LearningCommit,
    PerfCell,
    Positions,
)
from nba.store.redis.base import INBOX_WAIT_MAX, RedisBase, Script
from nba.store.redis.events import from_inbox

log = logging.getLogger(__name__)

_CREDIT_EVENTS = Script(scripts.CREDIT_EVENTS)
_CLEAR_TALLY_MARKS = Script(scripts.CLEAR_TALLY_MARKS)
_COMMIT_LEARNING = Script(scripts.COMMIT_LEARNING)
_REBASE_MODEL = Script(scripts.REBASE_MODEL)
_TAKE_LEASE = Script(scripts.TAKE_LEASE)


def _performance_args(
    performance: Mapping[PerfCell, float],
) -> tuple[list[str], list[int], list[Any]]:
    """The counter hashes a commit touches, the epoch ms each expires at, and the increments (hash index,
    field, amount): each cell goes to its day's hourly hash and its month's daily hash."""
    index: dict[str, int] = {}
    expiries: list[int] = []
    totals: dict[tuple[int, str], float] = defaultdict(float)
    for cell, amount in performance.items():
        if not amount:
            continue
        rest = f"{cell.action_id}|{cell.channel}|{cell.arm}|{cell.measure}"
        for key, prefix, until_ms in _places(cell.hour):
            if key not in index:
                index[key] = len(index)
                expiries.append(until_ms)
            totals[(index[key], prefix + rest)] += amount
    increments: list[Any] = []
    for (i, field), amount in totals.items():
        # counts go to HINCRBY (commit_learning.lua): whole numbers; only a `value` may have a fraction
        increments += [i, field, repr(float(amount)) if field.endswith("|value") else str(int(amount))]
    return list(index), expiries, increments


@lru_cache(maxsize=4096)
def _places(hour: int) -> tuple[tuple[str, str, int], ...]:
    """Where an epoch hour's counters go: (hash, field prefix, epoch ms it expires at) for its day's hourly
    hash and its month's daily hash. Remembered: a busy learner commits many small batches of the same
    hours, and the dates cost it 12 us a counter."""
    at = dt.datetime.fromtimestamp(hour * 3600, dt.UTC)
    day_end = dt.datetime(at.year, at.month, at.day, tzinfo=dt.UTC) + dt.timedelta(days=1)
    month_end = dt.datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=dt.UTC)
    return (
        (keys.perf_hours(at.strftime("%Y-%m-%d")), f"{at.hour:02d}|", int((day_end + HOUR_KEPT).timestamp() * 1000)),
        (keys.perf_days(at.strftime("%Y-%m")), f"{at.day:02d}|", int((month_end + DAY_KEPT).timestamp() * 1000)),
    )


HOUR_KEPT = dt.timedelta(days=keys.PERF_HOUR_DAYS)
DAY_KEPT = dt.timedelta(days=keys.PERF_DAY_DAYS)


def _perf_hashes(start_hour: int, end_hour: int, by_day: bool) -> list[tuple[str, int]]:
    """The counter hashes covering [start_hour, end_hour), each with the epoch hour its offsets count from
    (field offset 0 is that hour; a daily hash's days count from 1, so its base is the month's first day)."""
    out: list[tuple[str, int]] = []
    if end_hour <= start_hour:
        return out
    day = dt.datetime.fromtimestamp(start_hour * 3600, dt.UTC).date()
    last = dt.datetime.fromtimestamp((end_hour - 1) * 3600, dt.UTC).date()
    if by_day:
        month = day.replace(day=1)
        while month <= last:
            start = int(dt.datetime(month.year, month.month, 1, tzinfo=dt.UTC).timestamp()) // 3600
            out.append((keys.perf_days(month.strftime("%Y-%m")), start))
            month = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)
        return out
    while day <= last:
        start = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) // 3600
        out.append((keys.perf_hours(day.isoformat()), start))
        day += dt.timedelta(days=1)
    return out


def _after(position: str) -> str:
    return f"({position}" if position != "0" else "-"


class Learning(RedisBase):
    async def read_inbox(self, after: Positions, count: int) -> InboxBatch:
        """Up to `count` entries of each shard after its position, all shards in one round trip."""
        shards = await self.inbox_shards()
        commands = [
            ("XRANGE", keys.inbox(i, shards), _after(after.get(i, "0")), "+", "COUNT", count) for i in range(shards)
        ]

        async def read() -> list[Any]:
            replies = await self._route.execute_all(commands)
            for reply in replies:
                if isinstance(reply, BaseException):
                    raise reply
            return replies

        entries = []
        last: dict[int, str] = {}
        for shard, rows in enumerate(await self._timed("read_inbox", read)):
            for rid, fields in rows:
                try:
                    entries.append((rid.decode(), from_inbox(fields[1])))
                except (ValueError, TypeError, IndexError):  # skipped: one bad entry must not stop all learning
                    self.unreadable("inbox_entry", rid.decode(), repr(fields))
            if rows:
                last[shard] = rows[-1][0].decode()
        return InboxBatch(entries, last)

    async def wait_inbox(self, after: Positions, seconds: float) -> bool:
        """Wait up to `seconds` for any shard to hold an entry after its position; True as soon as one does.
        The idle learner waits here instead of polling. One blocking read may last at most INBOX_WAIT_MAX
        (the connection's timeout allows that much), so a longer wait is several reads: clamping the wait
        instead returned False early to a caller that had asked for longer. Each shard is read on a
        connection of its own (a blocked connection carries nothing else, and one XREAD may name only
        streams of one slot on a cluster)."""
        shards = await self.inbox_shards()
        while len(self._shard_waits) < shards:
            self._shard_waits.append(self._waits if not self._shard_waits else self._route.blocking(INBOX_WAIT_MAX))
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while True:
            ms = max(1, int(min(end - loop.time(), INBOX_WAIT_MAX) * 1000))
            reads = [
                asyncio.ensure_future(
                    self._shard_waits[i].execute(
                        "XREAD", "COUNT", 1, "BLOCK", ms, "STREAMS", keys.inbox(i, shards), after.get(i, "0")
                    )
                )
                for i in range(shards)
            ]
            try:
                for read in asyncio.as_completed(reads):
                    if await read is not None:
                        return True
            finally:
                for read in reads:
                    read.cancel()  # its reply is read and dropped; the connection stays in order
                    if read.done() and not read.cancelled():
                        read.exception()  # seen: a failed read of one shard failed the wait already
            if loop.time() >= end - 0.001:
                return False

    async def learner_position(self) -> dict[int, str]:
        shards = await self.inbox_shards()
        stored: dict[bytes, bytes] = await self.client.hgetall(keys.LEARN_POSITIONS)  # type: ignore[assignment]
        positions = {int(k): v.decode() for k, v in stored.items()}
        if 0 not in positions and shards == 1:  # written by a version before the shards
            legacy = await self.client.get(keys.LEARN_POSITION)
            positions[0] = legacy.decode() if isinstance(legacy, bytes) else "0"
        return {i: positions.get(i, "0") for i in range(shards)}

    async def take_lease(self, token: str, lease_ms: int) -> bool:
        return bool(await self._eval("take_lease", _TAKE_LEASE, [keys.LEARN_LEASE], [token, lease_ms]))

    async def release_lease(self, token: str) -> None:
        if await self.client.get(keys.LEARN_LEASE) == token.encode():
            await self.client.delete(keys.LEARN_LEASE)

    async def credit_events(
        self, entries: list[tuple[str, EventArgs]], rewards: Mapping[tuple[str, str], float], position: Positions
    ) -> list[Grant]:
        """Credit inbox entries to their decisions: one script call per customer, one round trip.
        `position`: the learner's committed inbox positions (a customer's tally marks are read against its
        shard's)."""
        shards = await self.inbox_shards()
        table = [x for (ch, etype), r in rewards.items() for x in (ch, etype, r)]
        by_customer: dict[str, list[int]] = {}
        for i, (_, e) in enumerate(entries):
            by_customer.setdefault(e.customer_id, []).append(i)
        calls = []
        for cid, idx in by_customer.items():
            shard_position = position.get(keys.inbox_shard(cid, shards), "0")
            args: list[Any] = [keys.decision(cid, ""), shard_position, len(rewards), *table]
            for i in idx:
                rid, e = entries[i]
                args += [
                    rid,
                    e.event_id,
                    history.event_key(e.event_id),
                    e.ts_ms,
                    e.type,
                    e.action_id,
                    e.decision_id or "",
                ]
            calls.append(_CREDIT_EVENTS.args([keys.shown(cid), keys.customer(cid)], args))
        results = await self._timed(
            "credit_events", lambda: self._eval_many(_CREDIT_EVENTS, calls, route=self._confirmed)
        )
        out: list[Grant | None] = [None] * len(entries)
        for idx, res in zip(by_customer.values(), results, strict=True):
            for i, (status, trial, delta, meta, counted, marked) in zip(idx, res, strict=True):
                out[i] = Grant(
                    cast(GrantStatus, status.decode()),
                    float(trial),
                    float(delta),
                    meta.decode(errors="replace"),
                    counted == b"1",
                    marked == b"1",
                )
        return [g for g in out if g is not None]

    async def clear_tally_marks(self, customer_ids: Iterable[str], position: Positions) -> None:
        """After a commit at `position`: drop the tally marks its entries consumed (one round trip)."""
        shards = await self.inbox_shards()
        calls = [
            _CLEAR_TALLY_MARKS.args([keys.customer(cid)], [position.get(keys.inbox_shard(cid, shards), "0")])
            for cid in customer_ids
        ]
        if calls:
            await self._timed("clear_tally_marks", lambda: self._eval_many(_CLEAR_TALLY_MARKS, calls))

    async def commit_learning(self, token: str, lease_ms: int, commit: LearningCommit) -> bool:
        """Apply one batch's statistics and move the positions, atomically, if we hold the lease; then
        delete the committed entries from their shards (on a cluster they live on other primaries, so not
        in the same script: an entry left behind by a failure there is past the position, skipped by every
        reader, and deleted with the next commit of its shard)."""
        position = commit.position
        args: list[Any] = [token, lease_ms, "1" if commit.reset else "0", len(position)]
        for shard, entry in position.items():
            args += [shard, entry]
        args.append(len(commit.increments))
        for h, f, v in commit.increments:
            args += [int(h), f, repr(float(v))]
        perf_keys, expiries, perf_args = _performance_args(commit.performance)
        args += [*expiries, len(perf_args) // 3, *perf_args]
        contextual = commit.contextual
        rows = {**contextual, "signature": commit.signature.encode()} if contextual or commit.reset else {}
        for a, row in rows.items():
            args += [a, row]
        committed = bool(
            await self._eval(
                "commit_learning",
                _COMMIT_LEARNING,
                [
                    keys.LEARN_LEASE,
                    keys.LEARN_POSITIONS,
                    keys.MODEL_COUNTS,
                    keys.MODEL_CONTEXTUAL,
                    keys.EVENT_COUNTS,
                    keys.MODEL_ARMS,
                    keys.MODEL_VERSION,
                    keys.MODEL_UPDATED,
                    *perf_keys,
                ],
                args,
                route=self._confirmed,
            )
        )
        if committed and position:
            shards = await self.inbox_shards()
            # everything up to and including the position: an applied entry must not linger (an erased
            # customer's id)
            trims: list[tuple[Any, ...]] = []
            for shard, entry in position.items():
                trims += [
                    ("XTRIM", keys.inbox(shard, shards), "MINID", entry),
                    ("XDEL", keys.inbox(shard, shards), entry),
                ]
            failed = [r for r in await self._route.execute_all(trims) if isinstance(r, BaseException)]
            if failed:
                log.debug("deleting committed inbox entries failed (the next commit does it): %r", failed[0])
        return committed

    async def inbox_backlog(self) -> InboxBacklog:
        """Committed entries are deleted from the inbox (commit_learning), so what is left waits."""
        shards = await self.inbox_shards()
        commands: list[tuple[Any, ...]] = []
        for i in range(shards):
            commands += [("XLEN", keys.inbox(i, shards)), ("XRANGE", keys.inbox(i, shards), "-", "+", "COUNT", 1)]
        replies: list[Any] = []
        for reply in await self._route.execute_all(commands):
            if isinstance(reply, BaseException):
                raise reply
            replies.append(reply)
        pending = sum(int(n) for n in replies[0::2])
        oldest = [int(rows[0][0].decode().split("-")[0]) for rows in replies[1::2] if rows]
        return InboxBacklog(pending, min(oldest) if oldest else None)

    async def model_updated_ms(self) -> int | None:
        raw = await self.client.get(keys.MODEL_UPDATED)
        if not isinstance(raw, bytes):
            return None
        try:
            return int(raw)
        except ValueError:
            self.unreadable("model_updated", keys.MODEL_UPDATED, raw)
            return None

    async def performance(self, start_hour: int, end_hour: int, *, by_day: bool) -> dict[PerfCell, float]:
        hashes = _perf_hashes(start_hour, end_hour, by_day)
        async with self.client.pipeline(transaction=False) as pipe:
            for key, _ in hashes:
                pipe.hgetall(key)
            replies = await self._timed("performance", pipe.execute)
        out: dict[PerfCell, float] = {}
        for (key, base_hour), fields in zip(hashes, replies, strict=True):
            for raw_field, raw_amount in fields.items():
                try:
                    offset, action_id, channel, arm, measure = raw_field.decode().split("|")
                    hour = base_hour + int(offset) * (24 if by_day else 1) - (24 if by_day else 0)
                    amount = float(raw_amount)
                except ValueError:
                    self.unreadable("performance", key, raw_field)
                    continue
                if start_hour <= hour < end_hour:
                    out[PerfCell(hour, action_id, channel, arm, measure)] = amount
        return out

    async def rebase_model(
        self,
        token: str,
        lease_ms: int,
        counts: Mapping[tuple[str, str], tuple[float, float]],
        contextual: Mapping[str, bytes],
        landmark: float,
        half_life: float,
    ) -> bool:
        args: list[Any] = [token, lease_ms, repr(float(landmark)), repr(float(half_life)), 2 * len(counts)]
        for (action_id, key), (n, r) in counts.items():
            args += [f"n:{action_id}:{key}", repr(float(n)), f"r:{action_id}:{key}", repr(float(r))]
        for a, row in contextual.items():
            args += [a, row]
        return bool(
            await self._eval(
                "rebase_model",
                _REBASE_MODEL,
                [keys.LEARN_LEASE, keys.MODEL_COUNTS, keys.MODEL_CONTEXTUAL, keys.MODEL_DECAY, keys.MODEL_VERSION],
                args,
            )
        )
