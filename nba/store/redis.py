"""All Redis access of nba: one method per thing the domain needs, one round trip each.

Scripts are called by SHA with `EVALSHA` and loaded on NOSCRIPT (a restarted Redis forgets them);
redis-py's own Script objects in a pipeline would re-check every script on every execute, which is an
extra round trip per batch.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from nba.errors import StoredDataUnreadable
from nba.store import history, keys, scripts
from nba.store.multiplex import Multiplexer
from nba.store.unreadable import Unreadable

Observer = Callable[[str, float, bool], None]  # operation, milliseconds, whether it failed
INBOX_WAIT_MAX = 1.0  # seconds one blocking read of the inbox may wait (added to that connection's timeout)


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
    segments: int | None  # bits over the rule set's segments (segments.materialise)
    segments_version: str | None  # of the rules that computed `segments`
    history: bytes  # packed, oldest first (history.py)
    contact_actions: int = 0  # actions already returned in this contact_id
    version: str = "0"  # of the history this snapshot saw; a decision records only on the same one


class Recorded(enum.IntEnum):
    """What RECORD_DECISION did."""

    CHANGED = 0  # the history moved on since it was read: nothing written, rank again
    RECORDED = 1
    ERASED = 2  # the customer was erased: nothing written


@dataclass(frozen=True, slots=True)
class StoredProfile:
    attributes: dict[str, Any]
    segments: int
    segments_version: str
    revision: str
    updated_ms: int


@dataclass(frozen=True, slots=True)
class EventArgs:
    customer_id: str
    event_id: str
    ts_ms: int
    type: str
    action_id: str
    channel: str
    decision_id: str | None

    def inbox_entry(self) -> bytes:
        return orjson.dumps([self.customer_id, self.event_id, self.ts_ms, self.type, self.action_id, self.channel,
                             self.decision_id or ""])

    @staticmethod
    def from_inbox(raw: bytes) -> EventArgs:
        """ValueError when `raw` is not an entry nba wrote."""
        c, e, ts, t, a, ch, d = orjson.loads(raw)
        if not all(isinstance(x, str) for x in (c, e, t, a, ch, d)) or isinstance(ts, bool):
            raise ValueError("not an inbox entry")
        return EventArgs(c, e, int(ts), t, a, ch, d or None)


@dataclass(frozen=True, slots=True)
class Grant:
    """The learner's credit for one inbox entry (see CREDIT_EVENTS)."""

    status: str  # none | late | granted | dup | bad (the decision's meta cannot be read)
    trial: float
    reward: float
    meta: str  # the decision's learning meta for this action ('' when none)
    counted: bool  # this inbox entry counts the event in the per-action tally (once per event id)
    marked: bool  # ... decided by a tally mark, which the commit makes obsolete (clear_tally_marks)


@dataclass(frozen=True, slots=True)
class ModelData:
    """Everything the serving model is built from, read at one version."""

    version: str
    counts: dict[tuple[str, str], tuple[float, float]]
    contextual: dict[str, bytes]  # action -> row bytes
    signature: str  # feature columns the contextual rows were learned on
    arms: dict[str, tuple[float, float]]  # arm -> (shown, rewards)


@dataclass(frozen=True, slots=True)
class InboxBatch:
    """Inbox entries after a position: the readable ones, and the id of the last one read (readable or not,
    so the learner moves past an entry it skipped)."""

    entries: list[tuple[str, EventArgs]]
    last: str | None


class Store:
    def __init__(self, client: Redis, observe: Observer | None = None, unreadable: Unreadable | None = None):
        self.client = client
        self._observe = observe or (lambda op, ms, failed: None)
        self.unreadable = unreadable or Unreadable()
        self._record = _Script(scripts.RECORD_DECISION)
        self._apply = _Script(scripts.APPLY_EVENTS)
        self._credit = _Script(scripts.CREDIT_EVENTS)
        self._clear_marks = _Script(scripts.CLEAR_TALLY_MARKS)
        self._commit = _Script(scripts.COMMIT_LEARNING)
        self._take_lease = _Script(scripts.TAKE_LEASE)
        self._write_profile = _Script(scripts.WRITE_PROFILE)
        self._erase = _Script(scripts.ERASE_CUSTOMER)
        self._clear_due = _Script(scripts.CLEAR_REWRITE_DUE)
        self._attribute_codes = _Script(scripts.ATTRIBUTE_CODES)
        # the attribute registry (keys.ATTRIBUTE_CODES) as far as this process has needed it
        self._code_of: dict[str, int] = {}
        self._name_of: dict[int, str] = {}
        self._publish = _Script(scripts.PUBLISH_RULES)
        self._rollback = _Script(scripts.ROLLBACK_RULES)
        # the customer scripts and the inbox (every decision and event) share one pipelined connection
        self._mux = Multiplexer.like(client.connection_pool)
        # the learner's blocking read of the inbox
        self._waits = self._mux.blocking(INBOX_WAIT_MAX)

    async def _timed(self, op: str, call: Callable[[], Awaitable[Any]]) -> Any:
        # Any: with decode_responses=False replies are bytes, which redis-py's types cannot express
        start = time.perf_counter()
        failed = False
        try:
            return await call()
        except (RedisError, OSError):
            failed = True
            raise
        finally:
            self._observe(op, (time.perf_counter() - start) * 1000.0, failed)

    async def _eval(self, op: str, script: _Script, keys_: list[str], args: Iterable[Any]) -> Any:
        argv = script.args(keys_, args)
        return await self._timed(op, lambda: self._evalsha(script, argv))

    async def _evalsha(self, script: _Script, argv: tuple[Any, ...]) -> Any:
        """EVALSHA, loading the script when Redis does not have it (first use, a restart, SCRIPT FLUSH)."""
        try:
            return await self._mux.execute("EVALSHA", *argv)
        except NoScriptError:
            await self._mux.execute("SCRIPT", "LOAD", script.text)
            return await self._mux.execute("EVALSHA", *argv)

    async def ping(self) -> bool:
        return bool(await self._timed("ping", self.client.ping))

    async def config_advice(self) -> list[str]:
        """Where the Redis configuration makes customers' keys larger than they need to be (see
        keys.REDIS_CONFIG); empty when it is fine or CONFIG is not allowed (managed Redis services)."""
        advice = []
        try:
            for name, wanted in keys.REDIS_CONFIG.items():
                current = (await self.client.config_get(name)).get(name)
                if current is not None and int(current) < wanted:
                    advice.append(f"{name} is {current}; {wanted} keeps customers' hashes compact (with the "
                                  "default of 64 a customer takes about twice the memory)")
        except ResponseError:
            return []
        return advice

    async def close(self) -> None:
        await self._mux.close()
        await self._waits.close()
        await self.client.aclose()

    # --------------------------------------------------------------------------------- customers

    async def read_customer(self, customer_id: str, contact_id: str | None = None) -> CustomerSnapshot:
        """Profile and history in one HMGET (and the contact's count with it, pipelined): a decision's
        only read. Not atomic with the count, and need not be: a decision recorded in between changes
        the version read first, so recording on it fails and the decision is ranked again."""
        async def call() -> tuple[list[Any], Any]:
            read = self._mux.execute("HMGET", keys.customer(customer_id), "a", "s", "g", "v", "h")
            if contact_id is None:
                return await read, 0
            count = self._mux.execute("HGET", keys.contacts(customer_id), contact_id)
            both: tuple[list[Any], Any] = await asyncio.gather(read, count)
            return both

        (attrs, segs, segver, version, hist), shown = await self._timed("read_customer", call)
        return CustomerSnapshot(
            attributes=await self._decode_attributes(attrs, customer_id) if attrs else None,
            segments=_bits(segs),
            segments_version=segver.decode(errors="replace") if segver else None,
            history=hist or b"",
            contact_actions=int(shown or 0),
            version=version.decode(errors="replace") if version else "0",
        )

    async def get_profile(self, customer_id: str) -> tuple[StoredProfile | None, bytes]:
        """The stored profile (None when there is none) and the packed history."""
        async def call() -> list[Any]:
            return await self._mux.execute(  # type: ignore[no-any-return]
                "HMGET", keys.customer(customer_id), "a", "s", "g", "r", "u", "h")

        attrs, segs, segver, rev, updated, hist = await self._timed("get_profile", call)
        if rev is None:
            return None, hist or b""
        try:
            updated_ms = int(updated or 0)
        except ValueError:
            updated_ms = 0
        return StoredProfile(
            attributes=await self._decode_attributes(attrs or b"[]", customer_id), segments=_bits(segs) or 0,
            segments_version=(segver or b"").decode(errors="replace"), revision=rev.decode(errors="replace"),
            updated_ms=updated_ms), hist or b""

    async def write_profile(self, customer_id: str, expected_revision: str, attributes: Mapping[str, Any],
                            segments: int, segments_version: str, updated_ms: int) -> int:
        """Returns the new revision, or -1 when the profile changed since `expected_revision`."""
        encoded = await self._encode_attributes(attributes)
        return int(await self._eval(
            "write_profile", self._write_profile, [keys.customer(customer_id), keys.erased(customer_id)],
            [expected_revision, encoded, segments, segments_version, updated_ms, keys.erased_field(customer_id)]))

    async def _encode_attributes(self, attributes: Mapping[str, Any]) -> bytes:
        new = [name for name in attributes if name not in self._code_of]
        if new:
            codes = await self._eval("attribute_codes", self._attribute_codes, [keys.ATTRIBUTE_CODES], new)
            self._learn_codes(zip(new, codes, strict=True))
        return orjson.dumps([x for name, value in attributes.items() for x in (self._code_of[name], value)])

    async def _decode_attributes(self, raw: bytes, customer_id: str) -> dict[str, Any]:
        try:
            flat = orjson.loads(raw)
            if not isinstance(flat, list) or len(flat) % 2:
                raise ValueError("not a [code, value, ...] list")
            codes = flat[0::2]
            hash(tuple(codes))  # codes must be usable as keys (a list or object is not)
        except (ValueError, TypeError):
            self.unreadable("profile", customer_id, raw)
            raise StoredDataUnreadable(f"the stored profile of customer {customer_id} cannot be read; "
                                       "PUT replaces it, DELETE erases it") from None
        if any(code not in self._name_of for code in codes):
            # written by a process that met an attribute first: its code is in the registry
            registry: dict[bytes, bytes] = await self._timed(
                "attribute_codes", lambda: self.client.hgetall(keys.ATTRIBUTE_CODES))
            self._learn_codes((name.decode(), int(code)) for name, code in registry.items())
            lost = [code for code in codes if code not in self._name_of]
            if lost:
                self.unreadable("profile", customer_id, raw)
                raise StoredDataUnreadable(f"the stored profile of customer {customer_id} uses attribute codes "
                                           f"{lost}, which are not in {keys.ATTRIBUTE_CODES}; PUT replaces it, "
                                           "DELETE erases it")
        names = self._name_of
        return {names[code]: value for code, value in zip(codes, flat[1::2], strict=True)}

    def _learn_codes(self, pairs: Iterable[tuple[str, int]]) -> None:
        for name, code in pairs:
            self._code_of[name] = code
            self._name_of[code] = name

    async def erase(self, customer_id: str, now_ms: int) -> int:
        """Delete every key of the customer and leave a tombstone (ERASE_CUSTOMER); delete the learner's
        inbox entries that still name the customer; ask for Redis's files on disk to be rewritten
        (rewrite_if_due). Returns the number of keys deleted."""
        deleted = int(await self._eval(
            "erase", self._erase,
            [keys.customer(customer_id), keys.decisions(customer_id), keys.contacts(customer_id),
             keys.shown(customer_id), keys.erased(customer_id)],
            [keys.decision(customer_id, ""), keys.erased_field(customer_id), now_ms + keys.ERASED_SECONDS * 1000,
             now_ms]))
        await self._scrub_inbox(customer_id)
        await self.client.set(keys.REWRITE_DUE, now_ms)
        return deleted

    async def _scrub_inbox(self, customer_id: str) -> None:
        """The inbox holds only entries the learner has not committed (normally a second's worth; more
        while no learner runs): read it in pages and delete the customer's. An entry added after the
        erasure carries an event the tombstone refused; the learner deletes it with its batch."""
        mine = orjson.dumps([customer_id])[:-1] + b","  # every entry starts with its customer id
        start = "-"
        while True:
            rows: list[Any] = await self._mux.execute("XRANGE", keys.LEARN_INBOX, start, "+", "COUNT", 1000)
            doomed = [rid for rid, fields in rows if len(fields) > 1 and fields[1].startswith(mine)]
            if doomed:
                await self._mux.execute("XDEL", keys.LEARN_INBOX, *doomed)
            if len(rows) < 1000:
                return
            start = "(" + rows[-1][0].decode()

    async def rewrite_if_due(self, interval: float) -> str:
        """Have Redis rewrite its files on disk when an erasure happened since the last rewrite, at most
        once per `interval` seconds across all processes. Returns what was done: 'none' (nothing due, or
        another process's turn), 'started', 'busy' (a rewrite is running: it may have started before the
        erasure, so the next turn asks again) or 'refused' (the server does not allow it: a managed
        Redis whose provider's settings govern its files)."""
        due = await self.client.get(keys.REWRITE_DUE)
        if due is None or not await self.client.set(keys.REWRITE_LOCK, "1", nx=True, px=max(1, int(interval * 1000))):
            return "none"
        try:
            info = await self.client.info("persistence")
            if info.get("aof_rewrite_in_progress") or info.get("rdb_bgsave_in_progress"):
                await self.client.delete(keys.REWRITE_LOCK)
                return "busy"
            try:  # snapshots hold it as well; a managed Redis may not tell
                snapshots = bool((await self.client.config_get("save")).get("save"))
            except ResponseError:
                snapshots = False
            asked = False
            if info.get("aof_enabled"):
                await self.client.bgrewriteaof()
                asked = True
            if snapshots:
                await self.client.bgsave(schedule=True)  # after a rewrite that is running
                asked = True
        except ResponseError as exc:
            if "in progress" in str(exc) or "already" in str(exc):
                await self.client.delete(keys.REWRITE_LOCK)
                return "busy"
            return "refused"
        await self._eval("clear_rewrite_due", self._clear_due, [keys.REWRITE_DUE], [due])
        return "started" if asked else "none"

    # --------------------------------------------------------------------------------- decisions

    async def record_decision(self, customer_id: str, decision_id: str, ts_ms: int, record: bytes,
                              ranked: list[tuple[str, str]], *, channel: str, version: str,
                              contact_id: str | None = None, contact_ttl: float = 0) -> Recorded:
        """Record the decision and reserve its actions, if the customer's history is still at
        `version`. CHANGED (nothing written) when it moved on: rank again; ERASED (nothing written)
        for an erased customer. `ranked`: (action_id, learning meta) per returned action."""
        flat = [x for action, meta in ranked
                for x in (action, meta, history.reservation_entry(ts_ms, action, channel, decision_id))]
        return Recorded(int(await self._eval(
            "record_decision", self._record,
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

    # ------------------------------------------------------------------------------------ events

    async def apply_events(self, by_customer: Mapping[str, list[EventArgs]],
                           now_ms: int | None = None) -> dict[str, list[str]]:
        """Apply the events to the customers' histories, then put them in the learner's inbox, in one
        pipelined round trip (Redis runs one connection's commands in order, so the learner never meets
        an entry whose history, and tally mark, is not written yet). A connection lost in between leaves
        histories the learner has not seen; the client got no answer and re-sends: the histories say
        'dup', the inbox gets the events again, and the learner credits each once (its grants). A failed
        inbox write fails the batch the same way. Returns a status per event (see APPLY_EVENTS)."""
        calls: list[tuple[str, tuple[Any, ...]]] = []
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        entries: list[bytes] = []
        for cid, events in by_customer.items():
            args: list[Any] = [now_ms - keys.HISTORY_TTL * 1000, keys.HISTORY_MAX, keys.HISTORY_TTL,
                               keys.decision(cid, ""), keys.TALLY_MARKS_BYTES, keys.erased_field(cid), now_ms]
            for e in events:
                key = history.event_key(e.event_id)
                args += [key, e.ts_ms, history.event_entry(e.ts_ms, e.type, e.action_id, e.channel, key), e.type,
                         e.action_id, e.decision_id or ""]
                entries.append(e.inbox_entry())
            calls.append((cid, self._apply.args([keys.customer(cid), keys.shown(cid), keys.erased(cid)], args)))

        async def apply_and_enqueue() -> list[Any]:
            return await self._eval_many(self._apply, [c[1] for c in calls],
                                         then=[("XADD", keys.LEARN_INBOX, "*", "e", entry) for entry in entries])

        results = await self._timed("apply_events", apply_and_enqueue)
        return {cid: [s.decode() for s in res] for (cid, _), res in zip(calls, results, strict=True)}

    async def _eval_many(self, script: _Script, calls: list[tuple[Any, ...]],
                         then: list[tuple[Any, ...]] | None = None) -> list[Any]:
        """Many calls of one script in one pipelined round trip, followed by the commands `then` in the
        same write (tasks start in the order gather gets them); the scripts' results. Any failure raises."""
        after = then or []
        replies: list[Any] = await asyncio.gather(*(self._mux.execute("EVALSHA", *argv) for argv in calls),
                                                  *(self._mux.execute(*cmd) for cmd in after),
                                                  return_exceptions=True)
        results = replies[:len(calls)]
        # a script flushed from Redis ran nowhere: run only those calls again (the first one loads it),
        # before `then` fails the batch if it failed
        for i, res in enumerate(results):
            if isinstance(res, NoScriptError):
                results[i] = await self._evalsha(script, calls[i])
            elif isinstance(res, BaseException):
                raise res
        for reply in replies[len(calls):]:
            if isinstance(reply, BaseException):
                raise reply
        return results

    # ----------------------------------------------------------------------------------- learner

    async def read_inbox(self, after: str, count: int) -> InboxBatch:
        # read at every learner step: the shared connection (raw replies: [id, [field, value]] rows)
        rows = await self._timed("read_inbox", lambda: self._mux.execute(
            "XRANGE", keys.LEARN_INBOX, f"({after}" if after != "0" else "-", "+", "COUNT", count))
        entries = []
        for rid, fields in rows:
            try:
                entries.append((rid.decode(), EventArgs.from_inbox(fields[1])))
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
            if await self._waits.execute("XREAD", "COUNT", 1, "BLOCK", ms, "STREAMS", keys.LEARN_INBOX,
                                         after) is not None:
                return True
            if loop.time() >= end - 0.001:
                return False

    async def learner_position(self) -> str:
        v = await self.client.get(keys.LEARN_POSITION)
        return v.decode() if isinstance(v, bytes) else "0"

    async def take_lease(self, token: str, lease_ms: int) -> bool:
        return bool(await self._eval("take_lease", self._take_lease, [keys.LEARN_LEASE], [token, lease_ms]))

    async def release_lease(self, token: str) -> None:
        if await self.client.get(keys.LEARN_LEASE) == token.encode():
            await self.client.delete(keys.LEARN_LEASE)

    async def credit_events(self, entries: list[tuple[str, EventArgs]], rewards: Mapping[tuple[str, str], float],
                            position: str) -> list[Grant]:
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
                args += [rid, e.event_id, history.event_key(e.event_id), e.ts_ms, e.type, e.action_id,
                         e.decision_id or ""]
            calls.append(self._credit.args([keys.shown(cid), keys.customer(cid)], args))
        results = await self._timed("credit_events", lambda: self._eval_many(self._credit, calls))
        out: list[Grant | None] = [None] * len(entries)
        for idx, res in zip(by_customer.values(), results, strict=True):
            for i, (status, trial, delta, meta, counted, marked) in zip(idx, res, strict=True):
                out[i] = Grant(status.decode(), float(trial), float(delta), meta.decode(errors="replace"),
                               counted == b"1", marked == b"1")
        return [g for g in out if g is not None]

    async def clear_tally_marks(self, customer_ids: Iterable[str], position: str) -> None:
        """After a commit at `position`: drop the tally marks its entries consumed (one round trip)."""
        calls = [self._clear_marks.args([keys.customer(cid)], [position]) for cid in customer_ids]
        if calls:
            await self._timed("clear_tally_marks", lambda: self._eval_many(self._clear_marks, calls))

    async def commit_learning(self, token: str, lease_ms: int, position: str,
                              increments: list[tuple[int, str, float]], contextual: Mapping[str, bytes],
                              signature: str, *, reset: bool = False) -> bool:
        """Apply one batch's statistics and move the position, atomically, if we hold the lease.
        `increments`: (1 counts | 2 event counts | 3 arm counts, field, amount)."""
        args: list[Any] = [token, lease_ms, position, "1" if reset else "0", len(increments)]
        for h, f, v in increments:
            args += [h, f, repr(float(v))]
        rows = {**contextual, "signature": signature.encode()} if contextual or reset else {}
        for a, row in rows.items():
            args += [a, row]
        return bool(await self._eval(
            "commit_learning", self._commit,
            [keys.LEARN_LEASE, keys.LEARN_INBOX, keys.LEARN_POSITION, keys.MODEL_COUNTS, keys.MODEL_CONTEXTUAL,
             keys.EVENT_COUNTS, keys.MODEL_ARMS, keys.MODEL_VERSION], args))

    # ------------------------------------------------------------------------------------- model

    async def model_version(self) -> str:
        # polled by every process every second: the shared connection, not a pool checkout
        v: bytes | None = await self._timed("model_version", lambda: self._mux.execute("GET", keys.MODEL_VERSION))
        return v.decode() if v else "0"

    async def model_data(self) -> ModelData:
        """The version and every statistic, read together so the version names exactly these."""
        async def run() -> list[Any]:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.get(keys.MODEL_VERSION)
                pipe.hgetall(keys.MODEL_COUNTS)
                pipe.hgetall(keys.MODEL_CONTEXTUAL)
                pipe.hgetall(keys.MODEL_ARMS)
                return await pipe.execute()

        version, raw, ctx, arms_raw = await self._timed("model_data", run)
        counts: dict[tuple[str, str], list[float]] = {}
        for field, value in raw.items():
            kind, action_id, key = field.decode().split(":", 2)
            cell = counts.setdefault((action_id, key), [0.0, 0.0])
            cell[0 if kind == "n" else 1] = float(value)
        arms: dict[str, list[float]] = {}
        for field, value in arms_raw.items():
            kind, arm = field.decode().split(":", 1)
            arms.setdefault(arm, [0.0, 0.0])[0 if kind == "n" else 1] = float(value)
        signature = ctx.pop(b"signature", b"").decode()
        return ModelData(
            version=version.decode(errors="replace") if version else "0",
            counts={k: (v[0], v[1]) for k, v in counts.items()},
            contextual={k.decode(): v for k, v in ctx.items()}, signature=signature,
            arms={k: (v[0], v[1]) for k, v in arms.items()},
        )

    async def event_counts(self) -> dict[tuple[str, str], int]:
        raw: dict[bytes, bytes] = await self._timed(
            "event_counts", lambda: self.client.hgetall(keys.EVENT_COUNTS))
        out: dict[tuple[str, str], int] = {}
        for field, value in raw.items():
            action_id, etype = field.decode().rsplit(":", 1)
            out[(action_id, etype)] = int(float(value))
        return out

    # ------------------------------------------------------------------------------------- rules

    async def publish_rules(self, version: str, files: Mapping[str, str], *, force: bool = True) -> bool:
        """Make a validated rule set read from a rules directory the current one for every process; True
        when the current version changed. Without `force`, only when the directory's content differs
        from the last one published (see PUBLISH_RULES)."""
        return bool(await self._eval(
            "publish_rules", self._publish, [keys.RULES_CURRENT, keys.RULES_HISTORY_KEY, keys.RULES_SOURCE],
            [version, keys.rules_set(""), keys.RULES_HISTORY, orjson.dumps(dict(files)),
             "force" if force else "changed"]))

    async def rules_source_version(self) -> str | None:
        """The version last published from a rules directory."""
        v = await self.client.get(keys.RULES_SOURCE)
        return v.decode() if isinstance(v, bytes) else None

    async def current_rules_version(self) -> str | None:
        # polled by every process twice a second: the shared connection, not a pool checkout
        v: bytes | None = await self._timed("rules_version", lambda: self._mux.execute("GET", keys.RULES_CURRENT))
        return v.decode() if v else None

    async def rules_files(self, version: str) -> dict[str, str] | None:
        """The files of a published set; None when it is gone or is not a {name: text} object."""
        raw: bytes | None = await self._timed("rules_files", lambda: self.client.get(keys.rules_set(version)))
        try:
            files = orjson.loads(raw) if raw else None
        except ValueError:
            files = None
        if files is not None and not (isinstance(files, dict) and all(isinstance(t, str) for t in files.values())):
            files = None
        if raw and files is None:
            self.unreadable("rules_set", version, raw)
        return files

    async def rollback_rules(self) -> str | None:
        v = await self._eval("rollback_rules", self._rollback, [keys.RULES_CURRENT, keys.RULES_HISTORY_KEY],
                             [keys.rules_set("")])
        return v.decode() if v else None


def _bits(raw: bytes | None) -> int | None:
    """Stored segment bits; None (recompute them) when absent or unreadable."""
    try:
        return int(raw) if raw else None
    except ValueError:
        return None
