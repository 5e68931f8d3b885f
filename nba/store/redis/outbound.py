"""Outbound runs: their documents and selections, what real runs used of each day's capacity and of
actions' volumes, the capacity prices real-time decisions read, and the one-real-run-at-a-time lock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import orjson

from nba.store import keys, scripts
from nba.store.redis.base import RedisBase, Script

_TAKE_LEASE = Script(scripts.TAKE_LEASE)  # the learner's lease script: take when free, renew when ours
_SELECTION_PAGE = 64  # chunks read per round trip


class Outbound(RedisBase):
    async def outbound_used(self, channel: str, day: str) -> dict[str, int]:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hget(keys.outbound_used(channel), f"{day}:*")
            pipe.hgetall(keys.OUTBOUND_VOLUME)
            on_channel, volumes = await pipe.execute()
        prefix = f"{day}:".encode()
        out = {k[len(prefix) :].decode(): int(v) for k, v in volumes.items() if k.startswith(prefix)}
        out["*"] = int(on_channel or 0)
        return out

    async def add_outbound_used(self, channel: str, day: str, counts: Mapping[str, int]) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            for name, n in counts.items():
                if n:
                    key = keys.outbound_used(channel) if name == "*" else keys.OUTBOUND_VOLUME
                    pipe.hincrby(key, f"{day}:{name}", n)
            pipe.expire(keys.outbound_used(channel), keys.OUTBOUND_USED_TTL)
            pipe.expire(keys.OUTBOUND_VOLUME, keys.OUTBOUND_USED_TTL)
            await pipe.execute()

    async def lock_outbound(self, token: str, ttl_ms: int) -> bool:
        return bool(await self._eval("lock_outbound", _TAKE_LEASE, [keys.OUTBOUND_LOCK], [token, ttl_ms]))

    async def unlock_outbound(self, token: str) -> None:
        if await self.client.get(keys.OUTBOUND_LOCK) == token.encode():
            await self.client.delete(keys.OUTBOUND_LOCK)

    async def capacity_prices(self) -> dict[str, bytes]:
        raw: dict[bytes, bytes] = await self.client.hgetall(keys.OUTBOUND_PRICES)  # type: ignore[assignment]
        return {k.decode(): v for k, v in raw.items()}

    async def set_capacity_price(self, channel: str, day: str, price: bytes, now_ms: int) -> None:
        ended = []
        for field, raw in (await self.capacity_prices()).items():
            if field.startswith(f"{channel}|"):
                try:
                    if int(orjson.loads(raw)["until_ms"]) <= now_ms:
                        ended.append(field)
                except (ValueError, KeyError, TypeError):
                    ended.append(field)  # unreadable: replaced by what this run knows
        async with self.client.pipeline(transaction=True) as pipe:
            if ended:
                pipe.hdel(keys.OUTBOUND_PRICES, *ended)
            pipe.hset(keys.OUTBOUND_PRICES, f"{channel}|{day}", price)
            await pipe.execute()

    async def save_outbound_run(self, run_id: str, doc: bytes, started_ms: int) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(keys.outbound_run(run_id), doc, ex=keys.OUTBOUND_RUN_TTL)
            pipe.expire(keys.outbound_selection(run_id), keys.OUTBOUND_RUN_TTL)
            pipe.zadd(keys.OUTBOUND_RUNS, {run_id: started_ms})
            pipe.zremrangebyrank(keys.OUTBOUND_RUNS, 0, -keys.OUTBOUND_RUNS_KEPT - 1)
            await pipe.execute()

    async def outbound_run(self, run_id: str) -> bytes | None:
        doc: bytes | None = await self.client.get(keys.outbound_run(run_id))  # type: ignore[assignment]
        return doc

    async def outbound_runs(self, count: int) -> list[str]:
        ids: list[bytes] = await self.client.zrevrange(keys.OUTBOUND_RUNS, 0, count - 1)  # type: ignore[assignment]
        return [i.decode() for i in ids]

    async def add_outbound_selection(self, run_id: str, chunk: bytes) -> None:
        key = keys.outbound_selection(run_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(key, chunk)
            pipe.expire(key, keys.OUTBOUND_RUN_TTL)
            await pipe.execute()

    async def outbound_selection(self, run_id: str) -> AsyncIterator[bytes]:
        key = keys.outbound_selection(run_id)
        start = 0
        while True:
            page: list[bytes] = await self.client.lrange(key, start, start + _SELECTION_PAGE - 1)  # type: ignore[assignment]
            for chunk in page:
                yield chunk
            if len(page) < _SELECTION_PAGE:
                return
            start += _SELECTION_PAGE
