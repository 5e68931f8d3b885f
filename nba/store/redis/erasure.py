"""Erasing a customer: its keys, a tombstone, its pending inbox entries, and the rewrite of Redis's
files on disk that takes it off them (customers/erasure.py schedules it)."""

from __future__ import annotations

from typing import Any

import orjson
from redis.exceptions import ResponseError

from nba.store import keys, scripts
from nba.store.contract import RewriteOutcome
from nba.store.redis.base import RedisBase, Script

_ERASE_CUSTOMER = Script(scripts.ERASE_CUSTOMER)
_CLEAR_REWRITE_DUE = Script(scripts.CLEAR_REWRITE_DUE)


class Erasure(RedisBase):
    async def erase(self, customer_id: str, now_ms: int) -> int:
        """Delete every key of the customer and leave a tombstone (ERASE_CUSTOMER); delete the learner's
        inbox entries that still name the customer; ask for Redis's files on disk to be rewritten
        (rewrite_if_due). Returns the number of keys deleted."""
        deleted = int(
            await self._eval(
                "erase",
                _ERASE_CUSTOMER,
                [
                    keys.customer(customer_id),
                    keys.decisions(customer_id),
                    keys.contacts(customer_id),
                    keys.shown(customer_id),
                    keys.erased(customer_id),
                    keys.requests(customer_id),
                ],
                [
                    keys.decision(customer_id, ""),
                    keys.erased_field(customer_id),
                    now_ms + keys.ERASED_SECONDS * 1000,
                    now_ms,
                ],
            )
        )
        await self._scrub_inbox(customer_id)
        await self.client.set(keys.REWRITE_DUE, now_ms)
        return deleted

    async def _scrub_inbox(self, customer_id: str) -> None:
        """The inbox holds only entries the learner has not committed (normally a second's worth; more
        while no learner runs): read it in pages and delete the customer's. An entry added after the
        erasure carries an event the tombstone refused; the learner deletes it with its batch."""
        mine = orjson.dumps([customer_id])[:-1] + b","  # every entry starts with its customer id
        shards = await self.inbox_shards()
        inbox = keys.inbox(keys.inbox_shard(customer_id, shards), shards)  # its events are in this one only
        start = "-"
        while True:
            rows: list[Any] = await self._route.execute("XRANGE", inbox, start, "+", "COUNT", 1000)
            doomed = [rid for rid, fields in rows if len(fields) > 1 and fields[1].startswith(mine)]
            if doomed:
                await self._route.execute("XDEL", inbox, *doomed)
            if len(rows) < 1000:
                return
            start = "(" + rows[-1][0].decode()

    async def rewrite_if_due(self, interval: float) -> RewriteOutcome:
        """Have Redis rewrite its files on disk when an erasure happened since the last rewrite, at most
        once per `interval` seconds across all processes. Returns what was done: 'none' (nothing due, or
        another process's turn), 'started', 'busy' (a rewrite is running: it may have started before the
        erasure, so the next turn asks again) or 'refused' (the server does not allow it: a managed
        Redis whose provider's settings govern its files)."""
        due = await self.client.get(keys.REWRITE_DUE)
        if due is None or not await self.client.set(keys.REWRITE_LOCK, "1", nx=True, px=max(1, int(interval * 1000))):
            return "none"
        # every server holding data: on a cluster, every primary and replica (a replica's files hold the
        # erased customer as well)
        client: Any = self.client
        targets: list[dict[str, Any]] = (
            [{"target_nodes": node} for node in client.get_nodes()] if self.cluster else [{}]
        )
        try:
            infos = [await client.info("persistence", **t) for t in targets]
            if any(i.get("aof_rewrite_in_progress") or i.get("rdb_bgsave_in_progress") for i in infos):
                await self.client.delete(keys.REWRITE_LOCK)
                return "busy"
            asked = False
            for info, target in zip(infos, targets, strict=True):
                try:  # snapshots hold it as well; a managed Redis may not tell
                    snapshots = bool((await client.config_get("save", **target)).get("save"))
                except ResponseError:
                    snapshots = False
                if info.get("aof_enabled"):
                    await client.bgrewriteaof(**target)
                    asked = True
                if snapshots:
                    await client.bgsave(schedule=True, **target)  # after a rewrite that is running
                    asked = True
        except ResponseError as exc:
            if "in progress" in str(exc) or "already" in str(exc):
                await self.client.delete(keys.REWRITE_LOCK)
                return "busy"
            return "refused"
        await self._eval("clear_rewrite_due", _CLEAR_REWRITE_DUE, [keys.REWRITE_DUE], [due])
        return "started" if asked else "none"
