"""Events: applied to the customers' histories and put in the learner's inbox, in one round trip."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, cast

import orjson

from nba.store import history, keys, scripts
from nba.store.contract import EventArgs, EventStatus
from nba.store.redis.base import RedisBase, Script

_APPLY_EVENTS = Script(scripts.APPLY_EVENTS)


def inbox_entry(e: EventArgs) -> bytes:
    """An event as the learner's inbox keeps it: a JSON array, the customer id first (erase finds it)."""
    return orjson.dumps([e.customer_id, e.event_id, e.ts_ms, e.type, e.action_id, e.channel, e.decision_id or ""])


def from_inbox(raw: bytes) -> EventArgs:
    """ValueError when `raw` is not an entry nba wrote."""
    c, e, ts, t, a, ch, d = orjson.loads(raw)
    if not all(isinstance(x, str) for x in (c, e, t, a, ch, d)) or isinstance(ts, bool):
        raise ValueError("not an inbox entry")
    return EventArgs(c, e, int(ts), t, a, ch, d or None)


class Events(RedisBase):
    async def apply_events(
        self,
        by_customer: Mapping[str, list[EventArgs]],
        now_ms: int | None = None,
        anonymous_ttl: Mapping[str, int] | None = None,
    ) -> dict[str, list[EventStatus]]:
        """Apply the events to the customers' histories, then put them in the learner's inbox, in one
        pipelined round trip (Redis runs one connection's commands in order, so the learner never meets
        an entry whose history, and tally mark, is not written yet). A connection lost in between leaves
        histories the learner has not seen; the client got no answer and re-sends: the histories say
        'dup', the inbox gets the events again, and the learner credits each once (its grants). A failed
        inbox write fails the batch the same way. Returns a status per event (see APPLY_EVENTS)."""
        calls: list[tuple[str, tuple[Any, ...]]] = []
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        # read once per process: only that first read is timed (as this call, whose failure it is)
        shards = self._shards or await self._timed("apply_events", self.inbox_shards)
        entries: list[tuple[Any, ...]] = []
        for cid, events in by_customer.items():
            args: list[Any] = [
                now_ms - keys.HISTORY_TTL * 1000,
                keys.HISTORY_MAX,
                keys.HISTORY_TTL,
                keys.decision(cid, ""),
                keys.TALLY_MARKS_BYTES,
                keys.erased_field(cid),
                now_ms,
                (anonymous_ttl or {}).get(cid, 0),
            ]
            inbox = keys.inbox(keys.inbox_shard(cid, shards), shards)
            for e in events:
                key = history.event_key(e.event_id)
                args += [
                    key,
                    e.ts_ms,
                    history.event_entry(e.ts_ms, e.type, e.action_id, e.channel, key),
                    e.type,
                    e.action_id,
                    e.decision_id or "",
                ]
                entries.append(("XADD", inbox, "*", "e", inbox_entry(e)))
            calls.append((cid, _APPLY_EVENTS.args([keys.customer(cid), keys.shown(cid), keys.erased(cid)], args)))

        async def apply_and_enqueue() -> list[Any]:
            # NBA_DURABILITY=replica: answered once a replica has the histories and the inbox entries
            return await self._eval_many(_APPLY_EVENTS, [c[1] for c in calls], then=entries, route=self._confirmed)

        results = await self._timed("apply_events", apply_and_enqueue)
        return {cid: [cast(EventStatus, s.decode()) for s in res] for (cid, _), res in zip(calls, results, strict=True)}
