"""Request rates per key: a token bucket per key in each process (no Redis round trip on the hot path).
A key's rate is shared out over the server's processes (`rate / workers` each); the kernel spreads
connections over them evenly enough that the whole server admits about the key's rate."""

from __future__ import annotations

import math

BURST_SECONDS = 1.0  # a key may spend this many seconds of its rate at once


class TokenBucket:
    __slots__ = ("at", "capacity", "rate", "tokens")

    def __init__(self, rate: float, now: float):
        self.rate = rate
        self.capacity = max(1.0, rate * BURST_SECONDS)
        self.tokens = self.capacity
        self.at = now

    def take(self, now: float) -> float:
        """0 when a request may go now (and it is counted), else the seconds until one may."""
        # max: a wall clock set back must not take tokens away
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = max(self.at, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimits:
    """Buckets by key id. Rates of 0 are unlimited."""

    def __init__(self, workers: int = 1):
        self.workers = max(1, workers)
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, key_id: str, rate: float, now: float) -> int:
        """0 when the request may go, else whole seconds to wait (for Retry-After)."""
        if rate <= 0:
            return 0
        share = rate / self.workers
        bucket = self._buckets.get(key_id)
        if bucket is None or bucket.rate != share:  # a key changed (re-created) or first seen
            bucket = self._buckets[key_id] = TokenBucket(share, now)
        wait = bucket.take(now)
        return 0 if wait == 0 else max(1, math.ceil(wait))

    def forget_except(self, key_ids: set[str]) -> None:
        """Drop the buckets of revoked keys."""
        for gone in set(self._buckets) - key_ids:
            del self._buckets[gone]
