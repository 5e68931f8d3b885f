"""All Redis access of nba: one method per thing the domain needs, one round trip each.

Scripts are called by SHA with `EVALSHA` and loaded on NOSCRIPT (a restarted Redis forgets them);
redis-py's own Script objects in a pipeline would re-check every script on every execute, which is an
extra round trip per batch.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from nba.store import keys, scripts

Observer = Callable[[str, float], None]


class _Script:
    def __init__(self, text: str):
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    def args(self, keys_: list[str], args: Iterable[Any]) -> tuple[Any, ...]:
        return (self.sha, len(keys_), *keys_, *args)


@dataclass(frozen=True, slots=True)
class CustomerSnapshot:
    """What a decision needs about one customer, read in one call."""

    attributes: dict[str, Any] | None
    segments: list[str] | None
    segments_version: str | None
    history: list[bytes]
    contact_actions: int = 0  # actions already returned in this contact_id
    version: str = "0"  # of the history this snapshot saw; a decision records only on the same one


@dataclass(frozen=True, slots=True)
class StoredProfile:
    attributes: dict[str, Any]
    segments: list[str]
    segments_version: str
    revision: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class EventArgs:
    event_id: str
    ts_ms: int
    type: str
    action_id: str
    channel: str
    decision_id: str | None
    reward: float


@dataclass(frozen=True, slots=True)
class EventOutcome:
    status: str  # dup | hist | unattributed | credited
    trials: float
    reward: float
    segment_key: str


class Store:
    def __init__(self, client: Redis, observe: Observer | None = None):
        self.client = client
        self._observe = observe or (lambda op, ms: None)
        self._read = _Script(scripts.READ_CUSTOMER)
        self._record = _Script(scripts.RECORD_DECISION)
        self._apply = _Script(scripts.APPLY_EVENTS)
        self._write_profile = _Script(scripts.WRITE_PROFILE)
        self._erase = _Script(scripts.ERASE_CUSTOMER)
        self._publish = _Script(scripts.PUBLISH_RULES)
        self._rollback = _Script(scripts.ROLLBACK_RULES)

    async def _timed(self, op: str, call: Callable[[], Awaitable[Any]]) -> Any:
        # Any: with decode_responses=False replies are bytes, which redis-py's types cannot express
        start = time.perf_counter()
        try:
            return await call()
        finally:
            self._observe(op, (time.perf_counter() - start) * 1000.0)

    async def _eval(self, op: str, script: _Script, keys_: list[str], args: Iterable[Any]) -> Any:
        argv = script.args(keys_, args)

        async def call() -> Any:
            try:
                return await self.client.evalsha(*argv)
            except NoScriptError:
                await self.client.script_load(script.text)
                return await self.client.evalsha(*argv)

        return await self._timed(op, call)

    async def ping(self) -> bool:
        return bool(await self._timed("ping", self.client.ping))

    async def close(self) -> None:
        await self.client.aclose()

    # --------------------------------------------------------------------------------- customers

    async def read_customer(self, customer_id: str, since_ms: int, max_entries: int,
                            contact_id: str | None = None) -> CustomerSnapshot:
        attrs, segs, segver, hist, shown, version = await self._eval(
            "read_customer", self._read,
            [keys.profile(customer_id), keys.history(customer_id), keys.contacts(customer_id),
             keys.version(customer_id)],
            [since_ms, max_entries, contact_id or ""])
        return CustomerSnapshot(
            attributes=orjson.loads(attrs) if attrs else None,
            segments=orjson.loads(segs) if segs else None,
            segments_version=segver.decode() if segver else None,
            history=hist,
            contact_actions=int(shown),
            version=version.decode(),
        )

    async def get_profile(self, customer_id: str) -> StoredProfile | None:
        raw: dict[bytes, bytes] = await self._timed(
            "get_profile", lambda: self.client.hgetall(keys.profile(customer_id)))
        if not raw:
            return None
        return StoredProfile(
            attributes=orjson.loads(raw[b"attrs"]), segments=orjson.loads(raw[b"segments"]),
            segments_version=raw[b"segver"].decode(), revision=raw.get(b"rev", b"").decode(),
            updated_at=raw.get(b"updated_at", b"").decode(),
        )

    async def write_profile(self, customer_id: str, expected_revision: str, attributes: Mapping[str, Any],
                            segments: list[str], segments_version: str, updated_at: str) -> int:
        """Returns the new revision, or -1 when the profile changed since `expected_revision`."""
        return int(await self._eval(
            "write_profile", self._write_profile, [keys.profile(customer_id)],
            [expected_revision, orjson.dumps(attributes), orjson.dumps(segments), segments_version, updated_at]))

    async def read_history(self, customer_id: str, since_ms: int) -> list[bytes]:
        async def call() -> list[bytes]:
            return await self.client.zrange(  # type: ignore[return-value]
                keys.history(customer_id), "+inf", since_ms, byscore=True, desc=True)

        history: list[bytes] = await self._timed("read_history", call)
        return history

    async def erase(self, customer_id: str) -> int:
        prefix = keys.decision(customer_id, "")
        return int(await self._eval(
            "erase", self._erase,
            [keys.profile(customer_id), keys.history(customer_id), keys.seen(customer_id),
             keys.decisions(customer_id), keys.contacts(customer_id), keys.version(customer_id)], [prefix]))

    # --------------------------------------------------------------------------------- decisions

    async def record_decision(self, customer_id: str, decision_id: str, ts_ms: int, record: bytes,
                              ranked: list[tuple[str, str]], *, channel: str, version: str,
                              contact_id: str | None = None, contact_ttl: float = 0) -> bool:
        """Record the decision and reserve its actions, if the customer's history is still at
        `version`; False (nothing written) when it moved on: rank again."""
        flat = [x for pair in ranked for x in pair]
        return bool(await self._eval(
            "record_decision", self._record,
            [keys.decisions(customer_id), keys.decision(customer_id, decision_id), keys.contacts(customer_id),
             keys.history(customer_id), keys.version(customer_id)],
            [decision_id, ts_ms, record, keys.DECISION_TTL, ts_ms - keys.DECISION_TTL * 1000, keys.DECISIONS_MAX,
             keys.decision(customer_id, ""), contact_id or "", max(1, int(contact_ttl)), version, channel,
             keys.HISTORY_TTL, *flat]))

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
        for row in rows:
            if row:
                rec = orjson.loads(row[b"rec"])
                rec["rewards"] = {k[2:].decode(): float(v) for k, v in row.items() if k.startswith(b"r:")}
                out.append(rec)
        return out

    # ------------------------------------------------------------------------------------ events

    async def apply_events(self, by_customer: Mapping[str, list[EventArgs]]) -> dict[str, list[EventOutcome]]:
        """One script call per customer, all in one pipelined round trip."""
        calls: list[tuple[str, tuple[Any, ...]]] = []
        now_ms = int(time.time() * 1000)
        for cid, events in by_customer.items():
            record_keys: list[str] = []
            slot: dict[str, int] = {}
            args: list[Any] = [now_ms - keys.DEDUPE_WINDOW * 1000, now_ms - keys.HISTORY_TTL * 1000,
                               keys.HISTORY_MAX, keys.DEDUPE_WINDOW, keys.HISTORY_TTL]
            for e in events:
                index = 0
                if e.decision_id is not None:
                    if e.decision_id not in slot:
                        record_keys.append(keys.decision(cid, e.decision_id))
                        slot[e.decision_id] = len(record_keys) + 3
                    index = slot[e.decision_id]
                args += [e.event_id, e.ts_ms, e.type, e.action_id, e.channel, index, e.reward]
            calls.append((cid, self._apply.args([keys.seen(cid), keys.history(cid), keys.version(cid), *record_keys],
                                                args)))

        async def run() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                for _, argv in calls:
                    pipe.evalsha(*argv)
                results: list[Any] = await pipe.execute(raise_on_error=False)
            # a script flushed from Redis ran nowhere: load it and run only those calls again
            for i, res in enumerate(results):
                if isinstance(res, NoScriptError):
                    await self.client.script_load(self._apply.text)
                    results[i] = await self.client.evalsha(*calls[i][1])
                elif isinstance(res, Exception):
                    raise res
            return results

        results = await self._timed("apply_events", run)
        return {
            cid: [EventOutcome(s.decode(), float(n), float(r), k.decode()) for s, n, r, k in res]
            for (cid, _), res in zip(calls, results, strict=True)
        }

    # ------------------------------------------------------------------------------------- model

    async def add_to_model(self, deltas: Mapping[tuple[str, str], tuple[float, float]],
                           event_counts: Mapping[tuple[str, str], int]) -> None:
        if not deltas and not event_counts:
            return

        async def run() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                for (action_id, key), (n, r) in deltas.items():
                    if n:
                        pipe.hincrbyfloat(keys.MODEL_COUNTS, keys.trials_field(action_id, key), n)
                    if r:
                        pipe.hincrbyfloat(keys.MODEL_COUNTS, keys.reward_field(action_id, key), r)
                for (action_id, etype), count in event_counts.items():
                    pipe.hincrby(keys.EVENT_COUNTS, f"{action_id}:{etype}", count)
                if deltas:
                    pipe.incr(keys.MODEL_VERSION)
                await pipe.execute()

        await self._timed("add_to_model", run)

    async def model_version(self) -> str:
        v: bytes | None = await self._timed("model_version", lambda: self.client.get(keys.MODEL_VERSION))
        return v.decode() if v else "0"

    async def model_counts(self) -> tuple[str, dict[tuple[str, str], tuple[float, float]]]:
        """The version and counts, read together so the version names exactly these counts."""
        async def run() -> list[Any]:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.get(keys.MODEL_VERSION)
                pipe.hgetall(keys.MODEL_COUNTS)
                return await pipe.execute()

        version, raw = await self._timed("model_counts", run)
        counts: dict[tuple[str, str], list[float]] = {}
        for field, value in raw.items():
            kind, action_id, key = field.decode().split(":", 2)
            cell = counts.setdefault((action_id, key), [0.0, 0.0])
            cell[0 if kind == "n" else 1] = float(value)
        return (version.decode() if version else "0"), {k: (v[0], v[1]) for k, v in counts.items()}

    async def event_counts(self) -> dict[tuple[str, str], int]:
        raw: dict[bytes, bytes] = await self._timed(
            "event_counts", lambda: self.client.hgetall(keys.EVENT_COUNTS))
        out: dict[tuple[str, str], int] = {}
        for field, value in raw.items():
            action_id, etype = field.decode().rsplit(":", 1)
            out[(action_id, etype)] = int(value)
        return out

    # ------------------------------------------------------------------------------------- rules

    async def publish_rules(self, version: str, files: Mapping[str, str]) -> bool:
        """Make a validated rule set the current one for every process; True when it changed."""
        return bool(await self._eval(
            "publish_rules", self._publish, [keys.RULES_CURRENT, keys.RULES_HISTORY_KEY],
            [version, keys.rules_set(""), keys.RULES_HISTORY, orjson.dumps(dict(files))]))

    async def current_rules_version(self) -> str | None:
        v: bytes | None = await self._timed("rules_version", lambda: self.client.get(keys.RULES_CURRENT))
        return v.decode() if v else None

    async def rules_files(self, version: str) -> dict[str, str] | None:
        raw: bytes | None = await self._timed("rules_files", lambda: self.client.get(keys.rules_set(version)))
        return orjson.loads(raw) if raw else None

    async def rollback_rules(self) -> str | None:
        v = await self._eval("rollback_rules", self._rollback, [keys.RULES_CURRENT, keys.RULES_HISTORY_KEY],
                             [keys.rules_set("")])
        return v.decode() if v else None
