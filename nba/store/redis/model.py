"""The model statistics the serving processes read (the learner writes them: learner.py)."""

from __future__ import annotations

from typing import Any

from nba.store import keys
from nba.store.contract import ModelData
from nba.store.redis.base import RedisBase


class Model(RedisBase):
    async def model_version(self) -> str:
        # polled by every process every second: the shared connection, not a pool checkout
        v: bytes | None = await self._timed("model_version", lambda: self._route.execute("GET", keys.MODEL_VERSION))
        return v.decode() if v else "0"

    async def model_data(self) -> ModelData:
        """The version and every statistic, read together so the version names exactly these."""

        async def run() -> list[Any]:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.get(keys.MODEL_VERSION)
                pipe.hgetall(keys.MODEL_COUNTS)
                pipe.hgetall(keys.MODEL_CONTEXTUAL)
                pipe.hgetall(keys.MODEL_ARMS)
                pipe.hgetall(keys.MODEL_DECAY)
                return await pipe.execute()

        version, raw, ctx, arms_raw, decay = await self._timed("model_data", run)
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
            contextual={k.decode(): v for k, v in ctx.items()},
            signature=signature,
            arms={k: (v[0], v[1]) for k, v in arms.items()},
            landmark=float(decay.get(b"landmark", 0.0)),
            half_life=float(decay.get(b"half_life", 0.0)),
        )

    async def event_counts(self) -> dict[tuple[str, str], int]:
        raw: dict[bytes, bytes] = await self._timed("event_counts", lambda: self.client.hgetall(keys.EVENT_COUNTS))
        out: dict[tuple[str, str], int] = {}
        for field, value in raw.items():
            action_id, etype = field.decode().rsplit(":", 1)
            out[(action_id, etype)] = int(float(value))
        return out
