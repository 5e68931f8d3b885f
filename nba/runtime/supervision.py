"""Supervision of what `nba serve` starts: the embedded redis-server and the worker processes.

Either can die (the kernel's OOM killer, a crash, an operator's kill). The supervising process (the
only process with one worker; the parent with `--workers N`) restarts it with a growing pause (1 s,
doubling up to 30 s while it keeps dying within a minute), logs why, and counts it. The embedded Redis
comes back on the same port, so every worker's URL stays valid, with its data from the append-only
file. What the supervisor knows is shared with the server processes through a small block of shared
memory: /metrics shows the restarts, and /healthz fails when the embedded Redis has been down longer
than REDIS_DOWN_GRACE despite the restarts, so an orchestrator restarts the whole server.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.sharedctypes
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from nba.runtime.embedded_redis import RedisServer

log = logging.getLogger(__name__)

FIRST_PAUSE = 1.0
LONGEST_PAUSE = 30.0
STABLE_SECONDS = 60.0  # a process that ran this long starts the pauses over
REDIS_DOWN_GRACE = 30.0  # /healthz fails after the embedded Redis has been down this long

_REDIS_RESTARTS, _WORKER_RESTARTS, _REDIS_DOWN_SINCE, _SIZE = range(4)


class Supervision:
    """Restart counts and the embedded Redis's state: written by the supervising process, read by every
    server process (a shared array of doubles: a torn read of one of them is at worst one scrape off)."""

    def __init__(self, shared: Any = None):
        self.shared = shared if shared is not None else multiprocessing.RawArray("d", _SIZE)

    @property
    def redis_restarts(self) -> int:
        return int(self.shared[_REDIS_RESTARTS])

    @property
    def worker_restarts(self) -> int:
        return int(self.shared[_WORKER_RESTARTS])

    @property
    def redis_down_since(self) -> float | None:
        """Epoch seconds since the embedded Redis is down; None while it runs (or there is none)."""
        since = float(self.shared[_REDIS_DOWN_SINCE])
        return since or None

    def redis_down(self, since: float | None) -> None:
        self.shared[_REDIS_DOWN_SINCE] = since or 0.0

    def count_restart(self, what: str) -> None:
        self.shared[_REDIS_RESTARTS if what == "redis" else _WORKER_RESTARTS] += 1

    def problems(self, now: float) -> list[str]:
        """Why this server can no longer serve, for /healthz (empty when it can)."""
        since = self.redis_down_since
        if since is not None and now - since > REDIS_DOWN_GRACE:
            return [f"the embedded redis-server has been down for {now - since:.0f} s and could not be restarted"]
        return []

    def collector(self) -> Collector:
        return _SupervisionCollector(self)


class _SupervisionCollector(Collector):
    def __init__(self, supervision: Supervision):
        self.supervision = supervision

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        restarts = CounterMetricFamily(
            "nba_supervised_restarts", "Processes nba serve restarted after they died", labels=["process"]
        )
        restarts.add_metric(["redis"], self.supervision.redis_restarts)
        restarts.add_metric(["worker"], self.supervision.worker_restarts)
        yield restarts
        down = GaugeMetricFamily("nba_embedded_redis_up", "1 while the embedded redis-server runs (1 without one)")
        down.add_metric([], 0.0 if self.supervision.redis_down_since is not None else 1.0)
        yield down


class Backoff:
    """The pause before the next restart: FIRST_PAUSE, doubling while the process keeps dying soon after
    it started, back to FIRST_PAUSE once one ran STABLE_SECONDS."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.pause = FIRST_PAUSE
        self.started = clock()

    def started_now(self) -> None:
        self.started = self.clock()

    def next_pause(self) -> float:
        if self.clock() - self.started >= STABLE_SECONDS:
            self.pause = FIRST_PAUSE
        pause = self.pause
        self.pause = min(LONGEST_PAUSE, self.pause * 2)
        return pause


class RedisSupervisor:
    """A thread that waits on the embedded redis-server and restarts it whenever it exits unasked."""

    def __init__(self, server: RedisServer, supervision: Supervision):
        self.server = server
        self.supervision = supervision
        self._stopping = threading.Event()
        self._restarting = threading.Lock()  # a stop never races a restart into an orphaned redis-server
        self._thread = threading.Thread(target=self._watch, name="redis-supervisor", daemon=True)
        self._backoff = Backoff()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop supervising, then stop the server (in that order: its exit is then not a death)."""
        self._stopping.set()
        with self._restarting:
            self.server.stop()
        self._thread.join(timeout=15)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            process = self.server.process
            if process is None:
                return
            code = process.wait()
            if self._stopping.is_set():
                return
            self.supervision.redis_down(time.time())
            log.error(
                "the embedded redis-server exited (code %s); restarting it on port %d. Its log ends with:\n%s",
                code,
                self.server.port,
                self.server.log_tail(1000),
            )
            while not self._stopping.is_set():
                pause = self._backoff.next_pause()
                if self._stopping.wait(pause):
                    return
                try:
                    with self._restarting:
                        if self._stopping.is_set():
                            return
                        self.server.restart()
                except (RuntimeError, OSError) as exc:
                    log.error(
                        "restarting the embedded redis-server failed (next try in %.0f s): %s", self._backoff.pause, exc
                    )
                    continue
                self._backoff.started_now()
                self.supervision.count_restart("redis")
                self.supervision.redis_down(None)
                log.warning("the embedded redis-server runs again on port %d", self.server.port)
                break
