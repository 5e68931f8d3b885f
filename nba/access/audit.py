"""The audit trail: who (key id and name) did what, when, to what. Nothing personal: an erasure is
recorded with a keyed hash of the customer id, so an auditor holding an id can confirm it was erased
(`nba audit --customer ID`), while the trail alone names no one."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from nba.access.roles import Principal
from nba.store.contract import Storage

ERASE = "customer.erase"
RULES_RELOAD = "rules.reload"
RULES_ROLLBACK = "rules.rollback"
KEY_CREATE = "key.create"
KEY_REVOKE = "key.revoke"
ACTIONS = (ERASE, RULES_RELOAD, RULES_ROLLBACK, KEY_CREATE, KEY_REVOKE)


def subject_hash(secret: bytes, customer_id: str) -> str:
    return hmac.new(secret, customer_id.encode(), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: str  # the stream id: milliseconds since the epoch, then a sequence
    at: str
    actor_id: str
    actor: str
    role: str
    action: str
    target: str
    detail: str

    @staticmethod
    def of(entry_id: str, fields: dict[str, str]) -> AuditEntry:
        ms = int(entry_id.split("-")[0])
        at = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds")
        g = fields.get
        return AuditEntry(
            entry_id,
            at,
            g("actor_id", ""),
            g("actor", ""),
            g("role", ""),
            g("action", ""),
            g("target", ""),
            g("detail", ""),
        )


class Audit:
    def __init__(self, store: Storage, clock: Callable[[], float]):
        self.store = store
        self.clock = clock
        self._secret: bytes | None = None

    async def subject(self, customer_id: str) -> str:
        if self._secret is None:
            self._secret = await self.store.audit_secret()
        return subject_hash(self._secret, customer_id)

    async def record(self, who: Principal, action: str, target: str, detail: str = "") -> str:
        return await self.store.append_audit(
            {
                "actor_id": who.id,
                "actor": who.name,
                "role": str(who.role),
                "action": action,
                "target": target,
                "detail": detail,
            },
            int(self.clock() * 1000),
        )

    async def erased(self, who: Principal, customer_id: str) -> str:
        return await self.record(who, ERASE, await self.subject(customer_id))

    async def read(
        self, *, after: str = "0", limit: int = 1000, action: str | None = None, customer_id: str | None = None
    ) -> list[AuditEntry]:
        """Entries after the stream id `after`, oldest first, at most `limit`, optionally only of one action
        or only the erasure of one customer id."""
        target = await self.subject(customer_id) if customer_id is not None else None
        out: list[AuditEntry] = []
        while len(out) < limit:
            rows = await self.store.read_audit(after, 1000)
            if not rows:
                break
            for eid, fields in rows:
                e = AuditEntry.of(eid, fields)
                if (action is None or e.action == action) and (
                    target is None or (e.action == ERASE and e.target == target)
                ):
                    out.append(e)
            after = rows[-1][0]
        return out[:limit]
