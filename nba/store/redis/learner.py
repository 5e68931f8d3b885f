"""The learner's side: the inbox, the lease, crediting events to decisions and committing a batch."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any, cast

from nba.store import history, keys, scripts
from nba.store.contract import EventArgs, Grant, GrantStatus, InboxBatch, Tally
from nba.store.redis.base import INBOX_WAIT_MAX, RedisBase, Script
from nba.store.redis.events import from_inbox

_CREDIT_EVENTS = Script(scripts.CREDIT_EVENTS)
_CLEAR_TALLY_MARKS = Script(scripts.CLEAR_TALLY_MARKS)
_COMMIT_LEARNING = Script(scripts.COMMIT_LEARNING)
_REBASE_MODEL = Script(scripts.REBASE_MODEL)
_TAKE_LEASE = Script(scripts.TAKE_LEASE)


class Learning(RedisBase):
    async def read_inbox(self, after: str, count: int) -> InboxBatch:
        # read at every learner step: the shared connection (raw replies: [id, [field, value]] rows)
        rows = await self._timed(
            "read_inbox",
            lambda: self._mux.execute(
                "XRANGE", keys.LEARN_INBOX, f"({after}" if after != "0" else "-", "+", "COUNT", count
            ),
        )
        entries = []
        for rid, fields in rows:
            try:
                entries.append((rid.decode(), from_inbox(fields[1])))
            except (ValueError, TypeError, IndexError):  # skipped: one bad entry must not stop all learning
                self.unreadable("inbox_entry", rid.decode(), repr(fields))
        return InboxBatch(entries, rows[-1][0].decode() if rows else None)

    async def wait_inbox(self, after: str, seconds: float) -> bool:
        """Wait up to `seconds` for the inbox to hold an entry after `after`; True as soon as it does. The
        idle learner waits here instead of polling. One blocking read may last at most INBOX_WAIT_MAX (the
        connection's timeout allows that much), so a longer wait is several reads: clamping the wait
        instead returned False early to a caller that had asked for longer."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while True:
            ms = max(1, int(min(end - loop.time(), INBOX_WAIT_MAX) * 1000))
            if (
                await self._waits.execute("XREAD", "COUNT", 1, "BLOCK", ms, "STREAMS", keys.LEARN_INBOX, after)
                is not None
            ):
                return True
            if loop.time() >= end - 0.001:
                return False

    async def learner_position(self) -> str:
        v = await self.client.get(keys.LEARN_POSITION)
        return v.decode() if isinstance(v, bytes) else "0"

    async def take_lease(self, token: str, lease_ms: int) -> bool:
        return bool(await self._eval("take_lease", _TAKE_LEASE, [keys.LEARN_LEASE], [token, lease_ms]))

    async def release_lease(self, token: str) -> None:
        if await self.client.get(keys.LEARN_LEASE) == token.encode():
            await self.client.delete(keys.LEARN_LEASE)

    async def credit_events(
        self, entries: list[tuple[str, EventArgs]], rewards: Mapping[tuple[str, str], float], position: str
    ) -> list[Grant]:
        """Credit inbox entries to their decisions: one script call per customer, one round trip.
        `position`: the learner's committed inbox position."""
        table = [x for (ch, etype), r in rewards.items() for x in (ch, etype, r)]
        by_customer: dict[str, list[int]] = {}
        for i, (_, e) in enumerate(entries):
            by_customer.setdefault(e.customer_id, []).append(i)
        calls = []
        for cid, idx in by_customer.items():
            args: list[Any] = [keys.decision(cid, ""), position, len(rewards), *table]
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
        results = await self._timed("credit_events", lambda: self._eval_many(_CREDIT_EVENTS, calls))
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

    async def clear_tally_marks(self, customer_ids: Iterable[str], position: str) -> None:
        """After a commit at `position`: drop the tally marks its entries consumed (one round trip)."""
        calls = [_CLEAR_TALLY_MARKS.args([keys.customer(cid)], [position]) for cid in customer_ids]
        if calls:
            await self._timed("clear_tally_marks", lambda: self._eval_many(_CLEAR_TALLY_MARKS, calls))

    async def commit_learning(
        self,
        token: str,
        lease_ms: int,
        position: str,
        increments: list[tuple[Tally, str, float]],
        contextual: Mapping[str, bytes],
        signature: str,
        *,
        reset: bool = False,
    ) -> bool:
        """Apply one batch's statistics and move the position, atomically, if we hold the lease.
        `increments`: (which tally, field, amount)."""
        args: list[Any] = [token, lease_ms, position, "1" if reset else "0", len(increments)]
        for h, f, v in increments:
            args += [int(h), f, repr(float(v))]
        rows = {**contextual, "signature": signature.encode()} if contextual or reset else {}
        for a, row in rows.items():
            args += [a, row]
        return bool(
            await self._eval(
                "commit_learning",
                _COMMIT_LEARNING,
                [
                    keys.LEARN_LEASE,
                    keys.LEARN_INBOX,
                    keys.LEARN_POSITION,
                    keys.MODEL_COUNTS,
                    keys.MODEL_CONTEXTUAL,
                    keys.EVENT_COUNTS,
                    keys.MODEL_ARMS,
                    keys.MODEL_VERSION,
                ],
                args,
            )
        )

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
