"""Decisions: recorded with their reservations in one compare-and-set, and read back for the log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import orjson

from nba.store import history, keys, scripts
from nba.store.contract import DecisionWrite, Recorded, StoredRequest
from nba.store.redis.base import RedisBase, Script

_RECORD_DECISION = Script(scripts.RECORD_DECISION)
_FIND_REQUEST = Script(scripts.FIND_REQUEST)


class RecordArgs(NamedTuple):
    """The ARGV of record_decision.lua, in its order (the returned actions follow)."""

    decision_id: str
    ts_ms: int
    record: bytes
    record_ttl: int  # seconds a decision record (and the shown map) lives
    index_cutoff: int  # ts_ms before which the index forgets records
    records_max: int
    record_prefix: str  # key prefix of the customer's decision records
    contact_id: str  # '' for none
    contact_ttl: int
    expected_version: str  # of the history the decision was ranked on
    history_ttl: int
    history_cutoff: int
    history_max: int
    erased_field: str
    anonymous_ttl: int  # see DecisionWrite
    request_id: str  # '' for none; then the next four are unused
    request_entry: str  # "<decision_id>|<until ms>|<fingerprint>" (requests.lua)
    request_until: int
    answer: bytes
    requests_max: int


class Decisions(RedisBase):
    async def record_decision(self, customer_id: str, version: str, write: DecisionWrite) -> Recorded:
        """Record the decision and reserve its actions, if the customer's history is still at
        `version`. CHANGED (nothing written) when it moved on: rank again; ERASED (nothing written)
        for an erased customer."""
        decision_id, ts_ms, request = write.decision_id, write.ts_ms, write.request
        args = RecordArgs(
            decision_id=decision_id,
            ts_ms=ts_ms,
            record=write.record,
            record_ttl=keys.DECISION_TTL,
            index_cutoff=ts_ms - keys.DECISION_TTL * 1000,
            records_max=keys.DECISIONS_MAX,
            record_prefix=keys.decision(customer_id, ""),
            contact_id=write.contact_id or "",
            contact_ttl=max(1, int(write.contact_ttl)),
            expected_version=version,
            history_ttl=keys.HISTORY_TTL,
            history_cutoff=ts_ms - keys.HISTORY_TTL * 1000,
            history_max=keys.HISTORY_MAX,
            erased_field=keys.erased_field(customer_id),
            anonymous_ttl=write.anonymous_ttl,
            request_id=request.request_id if request else "",
            request_entry=f"{decision_id}|{request.until_ms}|{request.fingerprint}" if request else "",
            request_until=request.until_ms if request else 0,
            answer=request.answer if request else b"",
            requests_max=keys.REQUESTS_MAX,
        )
        returned = [
            x
            for action, meta in write.ranked
            for x in (
                action,
                meta,
                history.reservation_entry(max(ts_ms, write.reserve_from_ms), action, write.channel, decision_id),
            )
        ]
        return Recorded(
            int(
                await self._eval(
                    "record_decision",
                    _RECORD_DECISION,
                    [
                        keys.decisions(customer_id),
                        keys.decision(customer_id, decision_id),
                        keys.contacts(customer_id),
                        keys.customer(customer_id),
                        keys.shown(customer_id),
                        keys.erased(customer_id),
                        # declared only when used: one key fewer for the script's slot to hold otherwise
                        *([keys.requests(customer_id)] if request else []),
                    ],
                    [*args, *returned],
                )
            )
        )

    async def find_request(self, customer_id: str, request_id: str, now_ms: int) -> StoredRequest | None:
        found = await self._eval(
            "find_request",
            _FIND_REQUEST,
            [keys.requests(customer_id)],
            [request_id, now_ms, keys.decision(customer_id, "")],
        )
        if not found:
            return None
        did, fingerprint, answer = found
        return StoredRequest(did.decode(), fingerprint.decode(), answer)

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
                    self.unreadable(
                        "decision_record", f"{customer_id} {did.decode(errors='replace')}", row.get(b"rec", b"")
                    )
                    continue
                out.append(rec)
        return out
