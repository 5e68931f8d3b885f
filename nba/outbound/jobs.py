"""Outbound runs started over HTTP: each runs in the background of the process that was asked, and its
document in Redis (state, progress, report) is what any process answers with, so a status request may
reach another worker. The running process rewrites the document every HEARTBEAT_SECONDS; a document
that says running but has not been rewritten for STALE_SECONDS belongs to a process that stopped, and
reads as failed. The selection goes to Redis in chunks of lines for lead management to fetch."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from nba.concurrency import stop_if_cancelled
from nba.domain import iso_utc
from nba.errors import NbaError
from nba.learning.snapshot import Snapshot
from nba.outbound.run import OutboundRun, RunRequest, check
from nba.store.contract import Storage

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 1.0
STALE_SECONDS = 30.0
RUNS_LISTED = 50  # of the newest keys.OUTBOUND_RUNS_KEPT kept


class Jobs:
    def __init__(self, store: Storage, snapshot: Callable[[], Snapshot], clock: Callable[[], float] = time.time):
        self.store = store
        self.snapshot = snapshot
        self.clock = clock
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def start(self, req: RunRequest, started_by: str) -> dict[str, Any]:
        """Check the request (InvalidRequest naming the field), start it, and return its first document."""
        check(self.snapshot().rulebook, req)
        run = OutboundRun(self.store, self.snapshot, req, clock=self.clock)
        await run.acquire()  # a real run while another holds the lock: 409 now, not a failed job later
        doc: dict[str, Any] = {
            "run_id": run.run_id,
            "state": "running",
            "request": req.as_doc(),
            "started_by": started_by,
            "started_ms": int(self.clock() * 1000),
            "progress": run.progress.as_dict(),
        }
        try:
            await self._save(doc)
        except BaseException:
            await run.release()
            raise
        self._tasks[run.run_id] = asyncio.ensure_future(self._run(run, doc))
        return self._public(doc)

    async def _run(self, run: OutboundRun, doc: dict[str, Any]) -> None:
        lines = 0

        async def sink(batch: list[dict[str, Any]]) -> None:
            nonlocal lines
            lines += len(batch)
            await self.store.add_outbound_selection(run.run_id, b"".join(orjson.dumps(x) + b"\n" for x in batch))

        beat = asyncio.ensure_future(self._heartbeat(run, doc))
        try:
            report = await run.run(sink)
            report["selection"] = {"lines": lines}
            doc.update(state="done", report=report)
        except NbaError as exc:  # refused (another run holds the channel): said in the document
            doc.update(state="failed", error={"code": exc.code, "detail": exc.detail})
        except asyncio.CancelledError:
            doc.update(state="failed", error={"code": "stopped", "detail": "the server running it stopped"})
            raise
        except Exception as exc:
            stop_if_cancelled()
            log.exception("outbound run %s failed", run.run_id)
            doc.update(state="failed", error={"code": "internal_error", "detail": f"{exc.__class__.__name__}: {exc}"})
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
            doc["progress"] = run.progress.as_dict()
            try:
                await asyncio.shield(self._save(doc))
            except Exception:
                log.warning("could not save the document of outbound run %s", run.run_id, exc_info=True)
            self._tasks.pop(run.run_id, None)

    async def _heartbeat(self, run: OutboundRun, doc: dict[str, Any]) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            doc["progress"] = run.progress.as_dict()
            try:
                await self._save(doc)
            except Exception:
                stop_if_cancelled()
                log.warning("could not save the progress of outbound run %s", run.run_id, exc_info=True)

    async def _save(self, doc: dict[str, Any]) -> None:
        doc["updated_ms"] = int(self.clock() * 1000)
        await self.store.save_outbound_run(doc["run_id"], orjson.dumps(doc), doc["started_ms"])

    async def read(self, run_id: str) -> dict[str, Any] | None:
        raw = await self.store.outbound_run(run_id)
        if raw is None:
            return None
        try:
            doc: dict[str, Any] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.store.unreadable("outbound_run", run_id, raw)
            return None
        if doc.get("state") == "running" and self.clock() * 1000 - doc.get("updated_ms", 0) > STALE_SECONDS * 1000:
            doc.update(state="failed", error={"code": "stopped", "detail": "the process running it stopped"})
        return self._public(doc)

    async def list(self) -> list[dict[str, Any]]:
        out = []
        for run_id in await self.store.outbound_runs(RUNS_LISTED):
            doc = await self.read(run_id)
            if doc is not None:
                doc.pop("report", None)
                doc.pop("progress", None)
                out.append(doc)
        return out

    async def close(self) -> None:
        """Stop the runs of this process (server shutdown): their documents say so."""
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    def _public(doc: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in doc.items() if k not in ("started_ms", "updated_ms")}
        out["started_at"] = iso_utc(doc.get("started_ms", 0) / 1000)
        out["updated_at"] = iso_utc(doc.get("updated_ms", 0) / 1000)
        return out
