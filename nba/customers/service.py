"""Customer profiles: replace, merge, read with segments and a contact summary, erase."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

from nba.concurrency import KeyedLocks
from nba.decision import segments
from nba.domain import EVENT_TYPES, iso_utc
from nba.errors import FieldError, InvalidRequest, NotFound, Unavailable
from nba.live import Live
from nba.rules import profile
from nba.rules.rulebook import Rulebook
from nba.store import history
from nba.store.contract import ProfileWrite, Storage
from nba.store.keys import HISTORY_TTL

_CAS_RETRIES = 20
Change = Literal["new", "changed", "unchanged"]


class Customers:
    def __init__(self, live: Live, store: Storage, clock: Callable[[], float]):
        self.live = live
        self.store = store
        self.clock = clock
        self._locks = KeyedLocks()

    async def replace(self, customer_id: str, attributes: dict[str, Any]) -> dict[str, Any]:
        await self.save(customer_id, attributes, merge=False)
        return await self.read(customer_id)

    async def merge(self, customer_id: str, patch: dict[str, Any]) -> dict[str, Any]:
        await self.save(customer_id, patch, merge=True)
        return await self.read(customer_id)

    async def save(self, customer_id: str, attributes: dict[str, Any], *, merge: bool) -> None:
        """Store attributes with their materialised segments. Writers of one customer queue in this
        process; against other processes a merge is a compare-and-set on the profile revision, retried
        with jitter when another writer got in between."""
        rb = self.live.snapshot.rulebook
        errors = profile.check_attributes(rb, attributes, allow_null=merge)
        if errors:
            raise InvalidRequest("invalid attributes, nothing was stored", errors=errors)
        async with self._locks.hold(customer_id):
            await self._save(rb, customer_id, profile.normalise(rb, attributes), merge)

    async def replace_many(self, records: list[tuple[str, dict[str, Any]]]) -> list[list[FieldError]]:
        """PUT for many customers at once: each checked and stored exactly as `save` stores it (same
        attributes, segments, key layout), written together in one round trip. The problems of each
        record (empty: stored); nothing of a record with problems is stored. Of two records of one
        customer the later stays, as two PUTs in a row. No per-customer lock: a replacement compares no
        revision, and a concurrent merge (PATCH) notices the new revision and retries."""
        rb = self.live.snapshot.rulebook
        compiled = rb.profile_segments
        now = self.clock()
        now_ms = int(now * 1000)
        version = rb.segments_version
        check, normalise, bits = profile.check_attributes, profile.normalise, compiled.bits
        results: list[list[FieldError]] = []
        writes: list[ProfileWrite] = []
        for customer_id, attributes in records:
            errors = check(rb, attributes)
            results.append(errors)
            if not errors:
                new = normalise(rb, attributes)
                writes.append(ProfileWrite(customer_id, new, bits(new, now), version, now_ms))
        await self.store.write_profiles(writes)
        return results

    async def preview_many(
        self, records: list[tuple[str, dict[str, Any]]], *, merge: bool
    ) -> list[list[FieldError] | Change]:
        """What `replace_many` (or a merge of each) would do, writing nothing: each record's problems, or
        whether it would create a profile, change one, or leave it as it is."""
        rb = self.live.snapshot.rulebook
        results: list[list[FieldError] | Change] = []
        valid: list[tuple[int, str, dict[str, Any]]] = []
        for customer_id, attributes in records:
            errors = profile.check_attributes(rb, attributes, allow_null=merge)
            results.append(errors)
            if not errors:
                valid.append((len(results) - 1, customer_id, profile.normalise(rb, attributes)))
        stored = await self.store.profile_attributes([cid for _, cid, _ in valid])
        for (at, _, attributes), current in zip(valid, stored, strict=True):
            new = profile.merge(current or {}, attributes) if merge else attributes
            results[at] = "new" if current is None else "unchanged" if new == current else "changed"
        return results

    async def _save(self, rb: Rulebook, customer_id: str, attributes: dict[str, Any], merge: bool) -> None:
        for attempt in range(_CAS_RETRIES):
            if attempt:
                await asyncio.sleep(random.uniform(0, 0.002 * attempt))
            now = self.clock()
            expected = "*"
            new = attributes
            if merge:
                current, _ = await self.store.get_profile(customer_id)
                expected = current.revision if current else ""
                new = profile.merge(current.attributes if current else {}, attributes)
            segs = rb.profile_segments.bits(new, now)
            rev = await self.store.write_profile(customer_id, expected, new, segs, rb.segments_version, int(now * 1000))
            if rev >= 0:
                return
        raise Unavailable(f"customer {customer_id} is being changed concurrently; try again")

    async def read(self, customer_id: str) -> dict[str, Any]:
        stored, hist = await self.store.get_profile(customer_id)
        if stored is None:
            raise NotFound(f"no profile for customer {customer_id}", code="customer_not_found")
        rb = self.live.snapshot.rulebook
        now = self.clock()
        member, _ = segments.current(rb, stored.attributes, stored.segments, stored.segments_version, {}, now)
        by_action: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        last: float | None = None
        events = 0
        bad = partial(self.store.unreadable, "history_entry", customer_id)
        for ts_ms, code, action, _channel in history.newest_first(hist, int((now - HISTORY_TTL) * 1000), bad):
            if code < 0:  # a decision's reservation, not something that happened
                continue
            events += 1
            by_action[action][EVENT_TYPES[code]] += 1
            last = max(last or 0.0, ts_ms / 1000)
        return {
            "customer_id": customer_id,
            "attributes": stored.attributes,
            "segments": [s.name for s in rb.segments if s.name in member],
            "updated_at": iso_utc(stored.updated_ms / 1000, "milliseconds"),
            "revision": int(stored.revision or 0),
            "history": {
                "events": events,
                "last_contact_at": None if last is None else iso_utc(last, "milliseconds"),
                "by_action": {a: dict(t) for a, t in sorted(by_action.items())},
            },
        }

    async def erase(self, customer_id: str) -> None:
        await self.store.erase(customer_id, int(self.clock() * 1000))
