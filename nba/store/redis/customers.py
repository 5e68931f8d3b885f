"""Customers: the profile and history of one customer, read in one call, written by
compare-and-set; attributes stored under the codes of the shared registry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import orjson

from nba.errors import StoredDataUnreadable
from nba.store import keys, scripts
from nba.store.contract import CustomerSnapshot, ProfileWrite, StoredProfile
from nba.store.redis.base import RedisBase, Script

_F = keys.Field

_WRITE_PROFILE = Script(scripts.WRITE_PROFILE)
_ATTRIBUTE_CODES = Script(scripts.ATTRIBUTE_CODES)


class Customers(RedisBase):
    async def read_customer(self, customer_id: str, contact_id: str | None = None) -> CustomerSnapshot:
        """Profile and history in one HMGET (and the contact's count with it, pipelined): a decision's
        only read. Not atomic with the count, and need not be: a decision recorded in between changes
        the version read first, so recording on it fails and the decision is ranked again."""

        async def call() -> tuple[list[Any], Any]:
            read = self._route.execute(*_read_command(customer_id))
            if contact_id is None:
                return await read, 0
            count = self._route.execute("HGET", keys.contacts(customer_id), contact_id)
            both: tuple[list[Any], Any] = await asyncio.gather(read, count)
            return both

        fields, shown = await self._timed("read_customer", call)
        return await self._snapshot(customer_id, fields, shown)

    async def read_customers(self, customer_ids: list[str]) -> list[CustomerSnapshot | StoredDataUnreadable]:
        replies = await self._timed(
            "read_customers", lambda: self._route.execute_all([_read_command(c) for c in customer_ids])
        )
        out: list[CustomerSnapshot | StoredDataUnreadable] = []
        for cid, reply in zip(customer_ids, replies, strict=True):
            if isinstance(reply, BaseException):
                raise reply
            try:
                out.append(await self._snapshot(cid, reply, 0))
            except StoredDataUnreadable as exc:
                out.append(exc)
        return out

    async def _snapshot(self, customer_id: str, fields: list[Any], shown: Any) -> CustomerSnapshot:
        attrs, segs, segver, version, hist = fields
        return CustomerSnapshot(
            attributes=await self._decode_attributes(attrs, customer_id) if attrs else None,
            segments=_bits(segs),
            segments_version=segver.decode(errors="replace") if segver else None,
            history=hist or b"",
            contact_actions=int(shown or 0),
            version=version.decode(errors="replace") if version else "0",
        )

    async def customers_with_profiles(self, batch: int = 1000) -> AsyncIterator[list[str]]:
        """SCAN over the customer hashes (on a cluster, every primary), keeping those that hold a profile:
        a customer known only from events has a hash without attributes."""
        found: list[str] = []
        async for key in self.client.scan_iter(match=keys.all_customers_pattern(), count=batch, _type="HASH"):
            name = key.decode()
            if keys.is_customer(name):
                found.append(name)
            if len(found) >= batch:
                yield await self._with_profile(found)
                found = []
        if found:
            yield await self._with_profile(found)

    async def _with_profile(self, names: list[str]) -> list[str]:
        held = await asyncio.gather(*(self._route.execute("HEXISTS", n, _F.ATTRIBUTES) for n in names))
        return [keys.customer_of(n) for n, h in zip(names, held, strict=True) if h]

    async def get_profile(self, customer_id: str) -> tuple[StoredProfile | None, bytes]:
        """The stored profile (None when there is none) and the packed history."""

        async def call() -> list[Any]:
            return await self._route.execute(  # type: ignore[no-any-return]
                "HMGET",
                keys.customer(customer_id),
                _F.ATTRIBUTES,
                _F.SEGMENTS,
                _F.SEGMENTS_VERSION,
                _F.REVISION,
                _F.UPDATED,
                _F.HISTORY,
            )

        attrs, segs, segver, rev, updated, hist = await self._timed("get_profile", call)
        if rev is None:
            return None, hist or b""
        try:
            updated_ms = int(updated or 0)
        except ValueError:
            updated_ms = 0
        return StoredProfile(
            attributes=await self._decode_attributes(attrs or b"[]", customer_id),
            segments=_bits(segs) or 0,
            segments_version=(segver or b"").decode(errors="replace"),
            revision=rev.decode(errors="replace"),
            updated_ms=updated_ms,
        ), hist or b""

    async def write_profile(
        self,
        customer_id: str,
        expected_revision: str,
        attributes: Mapping[str, Any],
        segments: int,
        segments_version: str,
        updated_ms: int,
    ) -> int:
        """Returns the new revision, or -1 when the profile changed since `expected_revision`."""
        encoded = await self._encode_attributes(attributes)
        return int(
            await self._eval(
                "write_profile",
                _WRITE_PROFILE,
                [keys.customer(customer_id), keys.erased(customer_id)],
                [expected_revision, encoded, segments, segments_version, updated_ms, keys.erased_field(customer_id)],
            )
        )

    async def write_profiles(self, writes: list[ProfileWrite]) -> None:
        """The calls of write_profile, sent together (_eval_many): the multiplexed connection writes them in
        one go and Redis runs them in order, so per profile this costs the script and no round trip."""
        if not writes:
            return
        await self._learn_names({name for w in writes for name in w.attributes})
        code_of = self._code_of
        calls = [
            _WRITE_PROFILE.args(
                [keys.customer(w.customer_id), keys.erased(w.customer_id)],
                [
                    "*",
                    orjson.dumps([x for name, value in w.attributes.items() for x in (code_of[name], value)]),
                    w.segments,
                    w.segments_version,
                    w.updated_ms,
                    keys.erased_field(w.customer_id),
                ],
            )
            for w in writes
        ]
        await self._timed("write_profiles", lambda: self._eval_many(_WRITE_PROFILE, calls))

    async def profile_attributes(self, customer_ids: list[str]) -> list[dict[str, Any] | None]:
        replies = await self._timed(
            "profile_attributes",
            lambda: self._route.execute_all([("HGET", keys.customer(c), _F.ATTRIBUTES) for c in customer_ids]),
        )
        out: list[dict[str, Any] | None] = []
        for cid, raw in zip(customer_ids, replies, strict=True):
            if isinstance(raw, BaseException):
                raise raw
            out.append(None if raw is None else await self._decode_attributes(raw, cid))
        return out

    async def _encode_attributes(self, attributes: Mapping[str, Any]) -> bytes:
        await self._learn_names(attributes)
        return orjson.dumps([x for name, value in attributes.items() for x in (self._code_of[name], value)])

    async def _learn_names(self, names: Iterable[str]) -> None:
        """The codes of attribute names this process has not met yet, from the shared registry."""
        new = [name for name in names if name not in self._code_of]
        if new:
            codes = await self._eval("attribute_codes", _ATTRIBUTE_CODES, [keys.ATTRIBUTE_CODES], new)
            self._learn_codes(zip(new, codes, strict=True))

    async def _decode_attributes(self, raw: bytes, customer_id: str) -> dict[str, Any]:
        try:
            flat = orjson.loads(raw)
            if not isinstance(flat, list) or len(flat) % 2:
                raise ValueError("not a [code, value, ...] list")
            codes = flat[0::2]
            hash(tuple(codes))  # codes must be usable as keys (a list or object is not)
        except (ValueError, TypeError):
            self.unreadable("profile", customer_id, raw)
            raise StoredDataUnreadable(
                f"the stored profile of customer {customer_id} cannot be read; PUT replaces it, DELETE erases it"
            ) from None
        if any(code not in self._name_of for code in codes):
            # written by a process that met an attribute first: its code is in the registry
            await self._read_registry()
            lost = [code for code in codes if code not in self._name_of]
            if lost:
                self.unreadable("profile", customer_id, raw)
                raise StoredDataUnreadable(
                    f"the stored profile of customer {customer_id} uses attribute codes "
                    f"{lost}, which are not in {keys.ATTRIBUTE_CODES}; PUT replaces it, "
                    "DELETE erases it"
                )
        names = self._name_of
        return {names[code]: value for code, value in zip(codes, flat[1::2], strict=True)}

    async def _read_registry(self) -> None:
        """One read of the registry for all who need it at once: a process that has just started and
        reads a thousand profiles together would otherwise send a thousand, more than its connections."""
        if self._registry_read is None or self._registry_read.done():
            self._registry_read = asyncio.ensure_future(self._registry())
        await asyncio.shield(self._registry_read)

    async def _registry(self) -> None:
        registry: dict[bytes, bytes] = await self._timed(
            "attribute_codes", lambda: self.client.hgetall(keys.ATTRIBUTE_CODES)
        )
        self._learn_codes((name.decode(), int(code)) for name, code in registry.items())

    def _learn_codes(self, pairs: Iterable[tuple[str, int]]) -> None:
        for name, code in pairs:
            self._code_of[name] = code
            self._name_of[code] = name


def _read_command(customer_id: str) -> tuple[str, ...]:
    """What a decision reads of a customer, in CustomerSnapshot's order."""
    return (
        "HMGET",
        keys.customer(customer_id),
        _F.ATTRIBUTES,
        _F.SEGMENTS,
        _F.SEGMENTS_VERSION,
        _F.VERSION,
        _F.HISTORY,
    )


def _bits(raw: bytes | None) -> int | None:
    """Stored segment bits; None (recompute them) when absent or unreadable."""
    try:
        return int(raw) if raw else None
    except ValueError:
        return None
