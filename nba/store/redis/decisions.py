"""Decisions: recorded with their reservations in one compare-and-set, and read back for the log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from nba.store import history, keys, scripts
from nba.store.contract import Recorded
from nba.store.redis.base import RedisBase, Script

_RECORD_DECISION = Script(scripts.RECORD_DECISION)


class Decisions(RedisBase):
    async def record_decision(self, customer_id: str, decision_id: str, ts_ms: int, record: bytes,
                              ranked: list[tuple[str, str]], *, channel: str, version: str,
                              contact_id: str | None = None, contact_ttl: float = 0) -> Recorded:
        """Record the decision and reserve its actions, if the customer's history is still at
        `version`. CHANGED (nothing written) when it moved on: rank again; ERASED (nothing written)
        for an erased customer. `ranked`: (action_id, learning meta) per returned action."""
        flat = [x for action, meta in ranked
                for x in (action, meta, history.reservation_entry(ts_ms, action, channel, decision_id))]
        return Recorded(int(await self._eval(
            "record_decision", _RECORD_DECISION,
            [keys.decisions(customer_id), keys.decision(customer_id, decision_id), keys.contacts(customer_id),
             keys.customer(customer_id), keys.shown(customer_id), keys.erased(customer_id)],
            [decision_id, ts_ms, record, keys.DECISION_TTL, ts_ms - keys.DECISION_TTL * 1000, keys.DECISIONS_MAX,
             keys.decision(customer_id, ""), contact_id or "", max(1, int(contact_ttl)), version,
             keys.HISTORY_TTL, ts_ms - keys.HISTORY_TTL * 1000, keys.HISTORY_MAX, keys.erased_field(customer_id),
             *flat])))

    async def customers_with_decisions(self) -> AsyncIterator[str]:
        """Every customer with decision records (SCAN: incremental, never blocks Redis)."""
        async for key in self.client.scan_iter(match=keys.all_decision_indexes_pattern(), count=1000):
            yield keys.customer_of(key.decode())

    async def decision_records(self, customer_id: str) -> list[dict[str, Any]]:
        """The decision log of one customer, each record with the rewards its actions earned."""
        ids: list[bytes] = await self.client.zrange(keys.decisions(customer_id), 0, -1)  # type: ignore[assignment]
        if not ids:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for did in ids:
                pipe.hgetall(keys.decision(customer_id, did.decode()))
            rows = await pipe.execute()
        out = []
        for did, row in zip(ids, rows, strict=True):
            if row:
                try:
                    rec = orjson.loads(row.get(b"rec", b""))
                    if not isinstance(rec, dict):
                        raise ValueError("not an object")
                    rec["rewards"] = {k[2:].decode(): float(v) for k, v in row.items() if k.startswith(b"r:")}
                except ValueError:
                    self.unreadable("decision_record", f"{customer_id} {did.decode(errors='replace')}",
                                    row.get(b"rec", b""))
                    continue
                out.append(rec)
        return out
