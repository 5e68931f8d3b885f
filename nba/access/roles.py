"""The role matrix: which role may do what. Routes name the permission they need (http/routes.py);
`authorize` is the one check, used by the access middleware and, for the channel a body names, by the
decide and events routes."""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass

from nba.errors import Forbidden


class Permission(enum.StrEnum):
    PUBLIC = "public"  # health probes: no key needed
    OPENAPI = "openapi"  # the OpenAPI document: any key (it names the rules' actions and attributes)
    DECIDE = "decide"  # POST /v1/decide, on the key's channels
    EVENTS = "events"  # POST /v1/events, on the key's channels
    EXPLAIN = "explain"  # POST /v1/decide with explain: true, on any channel (previews of the rules)
    CUSTOMERS_READ = "customers.read"
    CUSTOMERS_WRITE = "customers.write"  # replace, merge (and bulk import)
    CUSTOMERS_ERASE = "customers.erase"
    RULES_READ = "rules.read"
    RULES_CHANGE = "rules.change"  # reload, rollback
    STATS = "stats"
    LOGS = "logs"  # the decision log export
    METRICS = "metrics"
    HEALTH_DETAILS = "health.details"  # what /healthz and /readyz say beyond ok / not ok
    KEYS = "keys"
    AUDIT = "audit"
    OUTBOUND_RUN = "outbound.run"  # start an outbound run (a dry run too)
    OUTBOUND_READ = "outbound.read"  # read runs, their reports and selections (lead management)


class Role(enum.StrEnum):
    CHANNEL = "channel"
    CRM = "crm"
    MARKETER = "marketer"
    ANALYST = "analyst"
    OPERATOR = "operator"
    ADMIN = "admin"


P = Permission
ROLES: dict[Role, frozenset[Permission]] = {
    Role.CHANNEL: frozenset({P.OPENAPI, P.DECIDE, P.EVENTS}),
    Role.CRM: frozenset({P.OPENAPI, P.CUSTOMERS_READ, P.CUSTOMERS_WRITE, P.CUSTOMERS_ERASE, P.OUTBOUND_READ}),
    Role.MARKETER: frozenset(
        {P.OPENAPI, P.RULES_READ, P.RULES_CHANGE, P.STATS, P.EXPLAIN, P.OUTBOUND_RUN, P.OUTBOUND_READ}
    ),
    Role.ANALYST: frozenset({P.OPENAPI, P.RULES_READ, P.STATS, P.LOGS, P.OUTBOUND_READ}),
    Role.OPERATOR: frozenset({P.OPENAPI, P.RULES_READ, P.METRICS, P.HEALTH_DETAILS}),
    Role.ADMIN: frozenset(Permission),
}
# a channel key's decide and events are bound to its channels; the other roles' are not
CHANNEL_BOUND = frozenset({P.DECIDE, P.EVENTS})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an API key, the anonymous caller of an open server, or a command-line user."""

    id: str
    name: str
    role: Role
    channels: tuple[str, ...] = ()  # for the channel role: the only channels it may name

    def may(self, permission: Permission) -> bool:
        return permission is P.PUBLIC or permission in ROLES[self.role]


def authorize(who: Principal, permissions: tuple[Permission, ...], channels: Collection[str] = ()) -> None:
    """Forbidden unless `who` holds one of `permissions` (the first it holds counts: for a channel key
    bound to channels, every channel in `channels` must be one of them)."""
    permission = next((p for p in permissions if who.may(p)), None)
    if permission is None:
        needs = " or ".join(permissions)
        hint = " (a marketer may preview with explain: true)" if Permission.EXPLAIN in permissions else ""
        raise Forbidden(f"the {who.role} role may not do this (needs {needs}){hint}; see docs/access.md")
    if who.role is Role.CHANNEL and permission in CHANNEL_BOUND:
        outside = sorted(set(channels) - set(who.channels))
        if outside:
            raise Forbidden(
                f"this key may only be used on the channel(s) {', '.join(who.channels)}, not {', '.join(outside)}",
                code="channel_forbidden",
            )
