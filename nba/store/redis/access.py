"""API keys and the audit trail (store/keys.py: nba:{access}:*, nba:{audit}:*)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from nba.store import keys
from nba.store.redis.base import RedisBase


class Access(RedisBase):
    async def access_version(self) -> str:
        # polled by every process twice a second: the shared connection, not a pool checkout
        v: bytes | None = await self._timed("access_version", lambda: self._route.execute("GET", keys.ACCESS_VERSION))
        return v.decode() if v else "0"

    async def read_keys(self) -> tuple[str, dict[str, bytes], dict[str, int], bool]:
        """The version, the key records by id, when each was last used, and whether a key ever existed
        (sealed), read together."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.get(keys.ACCESS_VERSION)
            pipe.hgetall(keys.ACCESS_KEYS)
            pipe.hgetall(keys.ACCESS_USED)
            pipe.exists(keys.ACCESS_SEALED)
            version, records, used, sealed = await self._timed("read_keys", pipe.execute)
        last: dict[str, int] = {}
        for k, v in used.items():
            try:
                last[k.decode()] = int(v)
            except ValueError:
                self.unreadable("key_last_used", k.decode(errors="replace"), v)
        return (version or b"0").decode(), {k.decode(): v for k, v in records.items()}, last, bool(sealed)

    async def save_key(self, key_id: str, record: bytes) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(keys.ACCESS_KEYS, key_id, record)
            pipe.set(keys.ACCESS_SEALED, 1)
            pipe.incr(keys.ACCESS_VERSION)
            await self._timed("save_key", pipe.execute)

    async def revoke_key(self, key_id: str) -> bool:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.ACCESS_KEYS, key_id)
            pipe.hdel(keys.ACCESS_USED, key_id)
            pipe.incr(keys.ACCESS_VERSION)
            removed, _, _ = await self._timed("revoke_key", pipe.execute)
        return bool(removed)

    async def touch_keys(self, used: Mapping[str, int]) -> None:
        """Record when keys were last used; only keys that still exist (a revoked key stays gone)."""
        if not used:
            return
        existing = await self._timed("touch_keys", lambda: self.client.hmget(keys.ACCESS_KEYS, list(used)))
        live: dict[Any, Any] = {k: v for (k, v), rec in zip(used.items(), existing, strict=True) if rec is not None}
        if live:
            await self._timed("touch_keys", lambda: self.client.hset(keys.ACCESS_USED, mapping=live))

    async def audit_secret(self) -> bytes:
        """The key of the erasure hashes."""
        return await self._secret(keys.AUDIT_SECRET)

    async def board_secret(self) -> bytes:
        """The key of the board's session cookies."""
        return await self._secret(keys.ACCESS_BOARD_SECRET)

    async def _secret(self, key: str) -> bytes:
        """32 random bytes made on first use (SET NX: every process gets the same ones)."""
        await self.client.set(key, os.urandom(32), nx=True)
        secret = await self.client.get(key)
        if not isinstance(secret, bytes) or not secret:
            raise RuntimeError(f"{key} vanished")  # only a FLUSHALL between the two calls
        return secret

    async def append_audit(self, entry: Mapping[str, str], now_ms: int) -> str:
        """Append an entry (its id holds the time); entries past keys.AUDIT_RETENTION go at the same time."""
        cutoff = max(0, now_ms - keys.AUDIT_RETENTION * 1000)
        fields: Any = dict(entry)
        async with self.client.pipeline(transaction=False) as pipe:
            # by age (MINID) and by count: a caller erasing made-up ids at its rate must not fill Redis
            pipe.xadd(keys.AUDIT_LOG, fields, minid=f"{cutoff}-0", approximate=True)
            pipe.xtrim(keys.AUDIT_LOG, maxlen=keys.AUDIT_MAX, approximate=True)
            eid, _ = await self._timed("append_audit", pipe.execute)
        return str(eid.decode() if isinstance(eid, bytes) else eid)

    async def read_audit(self, after: str, count: int) -> list[tuple[str, dict[str, str]]]:
        """Entries after the stream id `after` ('0' for the oldest), oldest first."""
        rows = await self._timed(
            "read_audit",
            lambda: self.client.xrange(keys.AUDIT_LOG, min=f"({after}" if after != "0" else "-", count=count),
        )
        return [(i.decode(), {k.decode(): v.decode(errors="replace") for k, v in f.items()}) for i, f in rows]
