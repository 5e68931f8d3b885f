"""The OpenAPI 3.1 document of the HTTP API, built from the same limits the wire module enforces and
from the rules in use: channel names and their limits, and the customer attributes of profile.yaml
with their types, so that a request the document calls valid is one the server takes.

tests/api/test_openapi.py checks that its paths are exactly the routes and that real responses
validate against these schemas; tests/api/test_fuzz.py sends requests generated from it.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from typing import Any

import orjson

from nba import __version__
from nba.access import apikeys, audit
from nba.access.roles import ROLES, Permission, Role
from nba.domain import EVENT_TYPES, ID_RE, MAX_ID
from nba.http import wire
from nba.rules import profile as profiles
from nba.rules.rulebook import Rulebook
from nba.store import keys

# `$` is the end of the text in the ECMA regular expressions of JSON Schema (not before a final newline)
_ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID, "pattern": f"^{ID_RE.pattern}$"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_PROBLEM = {"description": "Problem", "content": {"application/problem+json": {"schema": _ref("Problem")}}}


_PROBLEM_RETRY = {
    **_PROBLEM,
    "headers": {
        "Retry-After": {
            "description": "seconds to wait before retrying; a retry of the same request is always "
            "safe (it may have been applied: events are idempotent on their ids)",
            "schema": {"type": "integer"},
        }
    },
}


_REQUEST_ID = "X-Request-Id"
_REQUEST_ID_IN = {
    "name": _REQUEST_ID,
    "in": "header",
    "required": False,
    "description": "an id for this call in your logs; nba logs it with every line about the request and "
    "returns it. Used when it is 1-128 of letters, digits and ._:@/+=-; otherwise (never refused) nba makes one.",
    "schema": {"type": "string"},
}
_REQUEST_ID_OUT = {
    "description": "the request's id: the caller's X-Request-Id, or the one nba made",
    "schema": {"type": "string"},
}


def _with_request_id(op: dict[str, Any]) -> None:
    op["parameters"] = [*op.get("parameters", []), _REQUEST_ID_IN]
    op["responses"] = {
        code: {**resp, "headers": {**resp.get("headers", {}), _REQUEST_ID: _REQUEST_ID_OUT}}
        for code, resp in op["responses"].items()
    }


def _problems(*codes: int) -> dict[str, Any]:
    return {str(c): _PROBLEM_RETRY if c == 503 else _PROBLEM for c in codes}


_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail", "code", "errors"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string", "pattern": "^[a-z_]+$"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    },
    "Context": {
        "type": "object",
        "maxProperties": wire.MAX_CONTEXT_KEYS,
        "propertyNames": {"maxLength": wire.MAX_CONTEXT_KEY, "pattern": f"^{wire.CONTEXT_KEY_RE.pattern}$"},
        "additionalProperties": {"type": ["string", "number", "boolean", "null"], "maxLength": wire.MAX_CONTEXT_STRING},
    },
    "DecideRequest": {
        "type": "object",
        "required": ["customer_id", "channel"],
        "additionalProperties": False,
        "properties": {
            "customer_id": _ID,
            "channel": {"type": "string", "description": "a channel of GET /v1/rules"},
            "context": _ref("Context"),
            "limit": {"type": "integer", "minimum": 1, "description": "at most the channel's max_limit"},
            "explain": {"type": "boolean", "default": False},
            "contact_id": _ID,
            "dry_run": {
                "type": "boolean",
                "default": False,
                "description": "rank and answer; record and reserve nothing (a preview): the answer says dry_run",
            },
            "request_id": {
                **_ID,
                "description": "names this page view or call: a repeat for the same customer within the channel's "
                "request_window (default 30 minutes) gets the same decision (same decision_id, actions and content, "
                "`repeat: true`), reserves and records nothing, and is never ranked again; a repeat must have the "
                "same channel, context, limit, contact_id and explain (else 409 request_id_reused). Ignored in a "
                "dry run. Not the X-Request-Id header, which only names the call in the logs.",
            },
            "profile": {
                "type": "object",
                "description": 'only with "dry_run": true: rank on these attributes (checked as a profile\'s are) '
                "instead of the stored ones; segments are computed from them, the stored contact history "
                "still applies",
            },
        },
    },
    "RankedAction": {
        "type": "object",
        "required": ["action_id", "rank", "group", "score", "propensity", "probability", "value", "content", "reason"],
        "properties": {
            "action_id": {"type": "string"},
            "rank": {"type": "integer", "minimum": 1},
            "group": {"type": "string"},
            "score": {"type": "number", "description": "Thompson draw x value x weight"},
            "propensity": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "posterior mean acceptance probability",
            },
            "probability": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "chance the policy puts this action at this rank (Monte Carlo)",
            },
            "value": {"type": "number"},
            "content": {"type": "object"},
            "reason": {"type": "string"},
        },
    },
    "ExplainItem": {
        "type": "object",
        "required": ["action_id", "rule", "eligible", "stage", "why"],
        "properties": {
            "why": {"type": "string", "description": "the same in a sentence for people: rule, segment, cap, numbers"},
            "action_id": {"type": "string"},
            "rule": {"type": "string"},
            "eligible": {"type": "boolean"},
            "stage": {
                "enum": [
                    "channel",
                    "validity",
                    "paused",
                    "consent",
                    "quiet_hours",
                    "eligibility",
                    "applicability",
                    "suitability",
                    "contact_policy",
                    "contact_limit",
                    "arbitration",
                    "threshold",
                    "ranked",
                ]
            },
            "reason": {"type": "string"},
            "rank": {"type": "integer"},
            "components": {"type": "object"},
        },
    },
    "Decision": {
        "type": "object",
        "required": [
            "decision_id",
            "customer_id",
            "channel",
            "actions",
            "segments",
            "rules_version",
            "model_version",
            "degraded",
        ],
        "properties": {
            "decision_id": {"type": "string"},
            "customer_id": {"type": "string"},
            "channel": {"type": "string"},
            "actions": {"type": "array", "items": _ref("RankedAction")},
            "segments": {"type": "array", "items": {"type": "string"}},
            "rules_version": {"type": "string"},
            "model_version": {"type": "string"},
            "degraded": {"type": "boolean"},
            "dry_run": {
                "type": "boolean",
                "description": "true: a preview (dry_run asked, or a marketer's explain): nothing was recorded or "
                "reserved",
            },
            "explain": {"type": "array", "items": _ref("ExplainItem")},
            "repeat": {
                "type": "boolean",
                "description": "true: the answer an earlier request with this request_id got (its explain "
                "too, when it asked for one), given again: nothing was ranked, recorded or reserved",
            },
        },
    },
    "Event": {
        "type": "object",
        "required": ["event_id", "type", "customer_id", "action_id", "channel"],
        "additionalProperties": False,
        "properties": {
            "event_id": _ID,
            "type": {"enum": list(EVENT_TYPES)},
            "customer_id": _ID,
            "action_id": _ID,
            "decision_id": _ID,
            "channel": {"type": "string", "description": "a channel of GET /v1/rules"},
            "ts": {
                "type": "string",
                "format": "date-time",
                "description": f"default: now; with a time zone; at most {wire.MAX_FUTURE_SECONDS} s ahead of "
                "the server's clock and at most 30 days old (the de-duplication window)",
            },
            "properties": {
                "type": "object",
                "description": f"at most {wire.MAX_PROPERTIES_BYTES} bytes as JSON, nested at most "
                f"{wire.MAX_PROPERTIES_DEPTH} levels",
            },
        },
    },
    "EventsRequest": {
        "type": "object",
        "required": ["events"],
        "additionalProperties": False,
        "properties": {"events": {"type": "array", "minItems": 1, "maxItems": wire.MAX_EVENTS, "items": _ref("Event")}},
    },
    "EventsAccepted": {
        "description": "`erased`: events for a customer erased within 30 days, accepted and not kept; "
        "`unknown_customer`: events for a customer without a profile on channels that do not remember "
        "anonymous visitors (channels.yaml remember_anonymous), accepted and not kept",
        "type": "object",
        "required": ["accepted", "duplicates", "credited", "unattributed", "erased", "unknown_customer"],
        "properties": {
            k: {"type": "integer", "minimum": 0}
            for k in ("accepted", "duplicates", "credited", "unattributed", "erased", "unknown_customer")
        },
    },
    "CustomerWrite": {
        "type": "object",
        "required": ["attributes"],
        "additionalProperties": False,
        "properties": {"attributes": {"type": "object", "description": "typed by rules/profile.yaml"}},
    },
    "CustomerPatch": {
        "type": "object",
        "required": ["attributes"],
        "additionalProperties": False,
        "properties": {
            "attributes": {"type": "object", "description": "typed by rules/profile.yaml; null removes an attribute"}
        },
    },
    "BulkResult": {
        "description": "`errors`: every problem of every rejected line (nothing of a rejected line is "
        "stored), in line order, with the line number (1 is the first line of the body) and the customer "
        "id when one could be read",
        "type": "object",
        "required": ["imported", "rejected", "errors"],
        "properties": {
            "imported": {"type": "integer", "minimum": 0},
            "rejected": {"type": "integer", "minimum": 0},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["line", "customer_id", "field", "message"],
                    "properties": {
                        "line": {"type": "integer", "minimum": 1},
                        "customer_id": {"anyOf": [_ID, {"type": "null"}]},
                        "field": {"type": "string"},
                        "message": {"type": "string"},
                    },
                },
            },
        },
    },
    "Customer": {
        "type": "object",
        "required": ["customer_id", "attributes", "segments", "updated_at", "revision", "history"],
        "properties": {
            "customer_id": {"type": "string"},
            "attributes": {"type": "object"},
            "segments": {"type": "array", "items": {"type": "string"}},
            "updated_at": {"type": "string"},
            "revision": {"type": "integer"},
            "history": {
                "type": "object",
                "required": ["events", "last_contact_at", "by_action"],
                "properties": {
                    "events": {"type": "integer"},
                    "last_contact_at": {"type": ["string", "null"]},
                    "by_action": {
                        "type": "object",
                        "additionalProperties": {"type": "object", "additionalProperties": {"type": "integer"}},
                    },
                },
            },
        },
    },
    "Rules": {
        "type": "object",
        "required": ["version", "segments_version", "channels", "groups", "segments", "actions", "learning"],
        "properties": {
            "version": {"type": "string"},
            "segments_version": {"type": "string"},
            "channels": {"type": "array", "items": {"type": "object"}},
            "groups": {"type": "array", "items": {"type": "object"}},
            "segments": {"type": "array", "items": {"type": "object"}},
            "actions": {"type": "array", "items": {"type": "object", "required": ["id", "group", "channels"]}},
            "learning": {"type": "object"},
        },
    },
    "RulesReloaded": {
        "type": "object",
        "required": ["version", "changed"],
        "properties": {"version": {"type": "string"}, "changed": {"type": "boolean"}},
    },
    "Rate": {
        "type": "object",
        "description": "accepted / shown with its Wilson 95% interval (null: nothing shown)",
        "required": ["shown", "accepted", "rate", "rate_low", "rate_high"],
        "properties": {
            "shown": {"type": "number"},
            "accepted": {"type": "number"},
            "rate": {"type": ["number", "null"]},
            "rate_low": {"type": ["number", "null"]},
            "rate_high": {"type": ["number", "null"]},
        },
    },
    "PerformanceFigures": {
        "type": "object",
        "required": ["shown", "accepted", "rejected", "clicked", "value", "rate", "series", "model", "control", "lift"],
        "properties": {
            "shown": {"type": "number", "description": "impressions"},
            "accepted": {"type": "number"},
            "rejected": {"type": "number"},
            "clicked": {"type": "number"},
            "value": {
                "type": "number",
                "description": "the value of the accepted actions: accepts x the action's value",
            },
            "events": {"type": "object", "additionalProperties": {"type": "number"}},
            "rate": {"type": ["number", "null"]},
            "rate_low": {"type": ["number", "null"]},
            "rate_high": {"type": ["number", "null"]},
            "series": {
                "type": "object",
                "description": "per bucket, in the order of `buckets`",
                "additionalProperties": {"type": "array", "items": {"type": ["number", "null"]}},
            },
            "model": _ref("Rate"),
            "control": _ref("Rate"),
            "lift": {"type": ["number", "null"], "description": "model rate / control rate - 1"},
            "lift_low": {"type": ["number", "null"]},
            "lift_high": {"type": ["number", "null"]},
        },
    },
    "RulesChange": {
        "type": "object",
        "required": ["at", "version", "kind", "previous"],
        "properties": {
            "at": {"type": "string", "format": "date-time"},
            "version": {"type": "string"},
            "kind": {"enum": ["publish", "rollback"]},
            "previous": {"type": ["string", "null"]},
        },
    },
    "Performance": {
        "type": "object",
        "required": ["from", "until", "bucket", "buckets", "rows", "totals", "rules_changes"],
        "properties": {
            "from": {"type": "string", "format": "date-time"},
            "until": {"type": "string", "format": "date-time"},
            "bucket": {"enum": ["hour", "day"]},
            "channel": {"type": ["string", "null"]},
            "buckets": {"type": "array", "items": {"type": "string", "format": "date-time"}},
            "rows": {
                "type": "array",
                "items": {
                    "allOf": [
                        _ref("PerformanceFigures"),
                        {
                            "type": "object",
                            "required": ["action_id", "name", "channel"],
                            "properties": {
                                "action_id": {"type": "string"},
                                "name": {"type": "string"},
                                "channel": {"type": "string"},
                            },
                        },
                    ]
                },
            },
            "totals": _ref("PerformanceFigures"),
            "rules_changes": {"type": "array", "items": _ref("RulesChange")},
            "retention": {
                "type": "object",
                "description": "days the hourly and the daily counters are kept",
                "properties": {"hour_days": {"type": "integer"}, "day_days": {"type": "integer"}},
            },
        },
    },
    "LearningHealth": {
        "type": "object",
        "required": ["model_version", "model_updated_at", "learner_lag_seconds", "inbox_pending", "arms"],
        "properties": {
            "model_version": {"type": "string"},
            "model_updated_at": {"type": ["string", "null"], "format": "date-time"},
            "model_age_seconds": {"type": ["number", "null"]},
            "learner_lag_seconds": {"type": "number"},
            "inbox_pending": {"type": "integer"},
            "rules_version": {"type": "string"},
            "arms": {"type": "object"},
            "decisions": {"type": "number", "description": "this server's processes, since they started"},
            "degraded": {"type": "number"},
            "degraded_share": {"type": ["number", "null"]},
            "errors": {"type": "object", "additionalProperties": {"type": "number"}},
        },
    },
    "RulesVersions": {
        "type": "object",
        "required": ["current", "versions", "changes"],
        "properties": {
            "current": {"type": ["string", "null"]},
            "running": {"type": "string"},
            "versions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["version", "current", "published_at"],
                    "properties": {
                        "version": {"type": "string"},
                        "current": {"type": "boolean"},
                        "published_at": {"type": ["string", "null"], "format": "date-time"},
                    },
                },
            },
            "changes": {"type": "array", "items": _ref("RulesChange")},
        },
    },
    "RulesDiff": {
        "type": "object",
        "required": ["from", "to", "files"],
        "properties": {
            "from": {"type": "string"},
            "to": {"type": "string"},
            "files": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["path", "status", "diff"],
                    "properties": {
                        "path": {"type": "string"},
                        "status": {"enum": ["added", "removed", "changed"]},
                        "diff": {"type": "string", "description": "unified diff"},
                    },
                },
            },
        },
    },
    "BoardSession": {
        "type": "object",
        "required": ["name", "role", "permissions", "csrf", "open"],
        "properties": {
            "name": {"type": "string"},
            "role": {"type": "string"},
            "permissions": {"type": "array", "items": {"type": "string"}},
            "csrf": {"type": "string", "description": "send it as X-CSRF-Token with every change"},
            "open": {"type": "boolean", "description": "a server without keys: no sign-in needed"},
        },
    },
    "ActionStats": {
        "type": "object",
        "required": ["model_version", "rules_version", "actions"],
        "properties": {
            "model_version": {"type": "string"},
            "rules_version": {"type": "string"},
            "half_life_seconds": {
                "type": ["number", "null"],
                "description": "learning.half_life: trials and rewards are what old answers are still worth",
            },
            "actions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["action_id", "group", "events", "segments"],
                    "properties": {
                        "action_id": {"type": "string"},
                        "group": {"type": "string"},
                        "events": {"type": "object", "additionalProperties": {"type": "integer"}},
                        "segments": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["segment_key", "trials", "rewards", "mean", "interval_95"],
                                "properties": {
                                    "segment_key": {"type": "string"},
                                    "trials": {"type": "number"},
                                    "rewards": {"type": "number"},
                                    "mean": {"type": "number"},
                                    "interval_95": {
                                        "type": "array",
                                        "items": {"type": "number"},
                                        "minItems": 2,
                                        "maxItems": 2,
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
    "KeyRequest": {
        "type": "object",
        "required": ["name", "role"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": f"^{apikeys.NAME_RE.pattern}$"},
            "role": {"enum": [r.value for r in Role]},
            "channels": {"type": "array", "maxItems": 64, "items": {"type": "string"}, "description": "channel role"},
            "origins": {
                "type": "array",
                "maxItems": 64,
                "items": {"type": "string"},
                "description": "web pages (https://host[:port]) allowed to call with this key (CORS)",
            },
            "expires": {"type": "string", "description": "a duration (90d, 12h, 30m) or an ISO 8601 date or time"},
            "unsigned_customers": {
                "type": "boolean",
                "description": "a key with origins without customer tokens: any page may name any customer",
            },
            "rate": {
                "type": "number",
                "minimum": 0,
                "maximum": apikeys.MAX_RATE,
                "description": f"requests per second (default {apikeys.DEFAULT_RATE:.0f}; 0: unlimited)",
            },
        },
    },
    "Key": {
        "type": "object",
        "required": [
            "id",
            "name",
            "role",
            "channels",
            "origins",
            "rate",
            "customer_tokens",
            "created",
            "expires",
            "last_used",
        ],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "role": {"enum": [r.value for r in Role]},
            "channels": {"type": "array", "items": {"type": "string"}},
            "origins": {"type": "array", "items": {"type": "string"}},
            "rate": {"type": "number"},
            "created": {"type": "string", "format": "date-time"},
            "expires": {"type": ["string", "null"], "format": "date-time"},
            "last_used": {"type": ["string", "null"], "format": "date-time"},
            "customer_tokens": {"type": "boolean", "description": "requests need a Nba-Customer-Token header"},
            "key": {"type": "string", "description": "only when created: the secret, shown this once"},
            "signing_secret": {
                "type": "string",
                "description": "only when created, for keys with customer tokens: what your server signs them with",
            },
        },
    },
    "Keys": {"type": "object", "required": ["keys"], "properties": {"keys": {"type": "array", "items": _ref("Key")}}},
    "AuditEntries": {
        "type": "object",
        "required": ["entries"],
        "properties": {
            "entries": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "at", "actor_id", "actor", "role", "action", "target", "detail"],
                    "properties": {
                        "id": {"type": "string", "description": "pass as `after` to read on"},
                        "at": {"type": "string", "format": "date-time"},
                        "actor_id": {"type": "string"},
                        "actor": {"type": "string"},
                        "role": {"type": "string"},
                        "action": {"enum": list(audit.ACTIONS)},
                        "target": {
                            "type": "string",
                            "description": "customer.erase: a keyed hash of the customer id (never the id)",
                        },
                        "detail": {"type": "string"},
                    },
                },
            }
        },
    },
    "OutboundRunRequest": {
        "type": "object",
        "required": ["channel"],
        "additionalProperties": False,
        "properties": {
            "channel": {"type": "string", "description": "a channel of the rules (its capacity per day applies)"},
            "segment": {"type": "string", "description": "only the customers in this segment (default: everyone)"},
            "customer_ids": {
                "type": "array",
                "maxItems": wire.MAX_OUTBOUND_LIST,
                "items": _ID,
                "description": "only these customers (not with segment)",
            },
            "dry_run": {"type": "boolean", "description": "report only: reserve, record and count nothing"},
            "send_at": {
                "type": "string",
                "format": "date-time",
                "description": "the earliest send time, with its zone (default now); moved past quiet hours",
            },
            "budget": {"type": "number", "minimum": 0, "description": "what the selections may cost (actions' cost)"},
            "per_customer": {"type": "integer", "minimum": 1, "description": "default: the channel's default_limit"},
        },
    },
    "OutboundRun": {
        "type": "object",
        "required": ["run_id", "state", "request", "started_at"],
        "properties": {
            "run_id": {"type": "string", "pattern": f"^{wire.RUN_ID.pattern}$"},
            "state": {"enum": ["running", "done", "failed"]},
            "request": {"type": "object"},
            "started_by": {"type": "string"},
            "started_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "progress": {"type": "object", "description": "phase and counts while it runs"},
            "report": {
                "type": "object",
                "description": "once done: customers, totals, actions, capacities with their prices, the "
                "comparison with first-come and with no capacity, examples of what capacity cut and why",
            },
            "error": {"type": "object", "description": "once failed: code and detail"},
        },
    },
    "OutboundRuns": {
        "type": "object",
        "required": ["runs"],
        "properties": {"runs": {"type": "array", "items": _ref("OutboundRun")}},
    },
    "RulesRolledBack": {
        "type": "object",
        "required": ["version", "previous"],
        "properties": {
            "version": {"type": "string"},
            "previous": {"type": "string"},
            "directory_version": {"type": ["string", "null"]},
        },
    },
    "Status": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string"},
            "rules_version": {"type": "string"},
            "pid": {"type": "integer", "description": "the server process that answered (one of --workers)"},
        },
    },
}

# a line of POST /v1/customers:bulk: the body of PUT with the customer's id
_SCHEMAS["CustomerLine"] = {
    **copy.deepcopy(_SCHEMAS["CustomerWrite"]),
    "description": "one line of POST /v1/customers:bulk (and of `nba customers import` JSON lines)",
    "required": ["customer_id", "attributes"],
}
_SCHEMAS["CustomerLine"]["properties"] = {"customer_id": _ID, **_SCHEMAS["CustomerLine"]["properties"]}

_CUSTOMER_ID = {"name": "customer_id", "in": "path", "required": True, "schema": _ID}
_VERSION = {"type": "string", "pattern": "^[0-9A-Za-z_.-]{1,128}$"}  # a rules version (wire.parse_rules_diff_query)
_RUN_ID = {
    "name": "run_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": f"^{wire.RUN_ID.pattern}$"},
}
_BODY_CUSTOMER = {"required": True, "content": {"application/json": {"schema": _ref("CustomerWrite")}}}
_BODY_PATCH = {"required": True, "content": {"application/json": {"schema": _ref("CustomerPatch")}}}


_BOARD_PAGE = {
    "get": {
        "summary": "The steering board (docs/board.md): a page reading the board's APIs",
        "responses": {
            "200": {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}},
            "304": {"description": "Not modified since the ETag in If-None-Match"},
        },
    }
}

Permissions = dict[tuple[str, str], tuple[Permission, ...]]


def openapi_document(rulebook: Rulebook, permissions: Permissions | None = None) -> dict[str, Any]:
    """The document for the rules in use (the same rules give the same document), with the roles each
    route admits (`permissions`: method and path -> what routes.ROUTES says)."""
    doc = copy.deepcopy(_static())
    schemas = doc["components"]["schemas"]
    channels = list(rulebook.channels)
    schemas["DecideRequest"]["properties"]["channel"] = {"enum": channels}
    # the largest limit a request may ask for depends on its channel
    schemas["DecideRequest"]["allOf"] = [
        {
            "if": {"properties": {"channel": {"const": name}}, "required": ["channel"]},
            "then": {"properties": {"limit": {"maximum": ch.max_limit}}},
        }
        for name, ch in rulebook.channels.items()
    ]
    schemas["Event"]["properties"]["channel"] = {"enum": channels}
    run = schemas["OutboundRunRequest"]
    run["properties"]["channel"] = {"enum": channels}
    run["properties"]["segment"] = {"enum": [s.name for s in rulebook.segments if s.kind != "context"]}
    run["not"] = {"required": ["segment", "customer_ids"]}
    names = "|".join(re.escape(a) for a in rulebook.attributes)
    for param in doc["paths"]["/v1/outbound/runs/{run_id}/selection"]["get"]["parameters"]:
        if param["name"] == "include":
            param["schema"]["pattern"] = f"^(({names})(,({names}))*)?$"
    run["allOf"] = [
        {
            "if": {"properties": {"channel": {"const": name}}, "required": ["channel"]},
            "then": {"properties": {"per_customer": {"maximum": ch.max_limit}}},
        }
        for name, ch in rulebook.channels.items()
    ]
    schemas["Event"]["properties"]["action_id"] = {"enum": [a.id for a in rulebook.actions]}
    for param in doc["paths"]["/v1/board/performance"]["get"]["parameters"]:
        if param["name"] == "channel":
            param["schema"] = {"enum": channels}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            needs = (permissions or {}).get((method.upper(), path)) if method != "parameters" else None
            if needs is None:
                continue
            if needs == (Permission.PUBLIC,):
                op["security"] = [{}, {"bearer": []}]  # open; a key with health.details sees more
                continue
            roles = [r.value for r, held in ROLES.items() if any(p in held for p in needs)]
            op["x-roles"] = roles
            op["description"] = (op.get("description", "") + f"\n\nRoles: {', '.join(roles)}.").strip()
            op["responses"] |= _problems(401, 403, 429)
    for ops in doc["paths"].values():
        for method, op in ops.items():
            if method != "parameters":
                _with_request_id(op)
    typed = {name: _attribute(kind, rulebook.list_values.get(name)) for name, kind in rulebook.attributes.items()}
    schemas["CustomerWrite"]["properties"]["attributes"] |= {"properties": typed, "additionalProperties": False}
    schemas["CustomerLine"]["properties"]["attributes"] |= {"properties": typed, "additionalProperties": False}
    schemas["DecideRequest"]["properties"]["profile"] |= {"properties": typed, "additionalProperties": False}
    schemas["DecideRequest"]["allOf"].append(
        {"if": {"required": ["profile"]}, "then": {"required": ["dry_run"], "properties": {"dry_run": {"const": True}}}}
    )
    schemas["CustomerPatch"]["properties"]["attributes"] |= {
        "properties": {name: {"anyOf": [t, {"type": "null"}]} for name, t in typed.items()},
        "additionalProperties": False,
    }
    return doc


_served: dict[str, bytes] = {}


def openapi_bytes(rulebook: Rulebook, permissions: Permissions) -> bytes:
    """The document as served, encoded once per rules version."""
    found = _served.get(rulebook.version)
    if found is None:
        _served.clear()
        found = _served[rulebook.version] = orjson.dumps(openapi_document(rulebook, permissions))
    return found


def _attribute(kind: str, values: tuple[str, ...] | None) -> dict[str, Any]:
    """The JSON Schema of an attribute type (profile.check_attributes is the enforcement)."""
    if kind == "string":
        return {"type": "string", "maxLength": profiles.MAX_STRING}
    if kind == "integer":
        return {"type": "integer", "minimum": -profiles.MAX_INTEGER, "maximum": profiles.MAX_INTEGER}
    if kind in ("number", "boolean"):
        return {"type": kind}
    if kind == "date":
        return {"type": "string", "format": "date", "description": "ISO 8601, e.g. 2026-11-23"}
    if kind == "list":
        item = {"enum": list(values)} if values else {"type": "string", "maxLength": 200}
        return {"type": "array", "maxItems": profiles.MAX_LIST, "items": item}
    return {
        "type": "object",
        "maxProperties": profiles.MAX_FLAGS,
        "propertyNames": {"maxLength": 64},
        "additionalProperties": {"type": "boolean"},
    }  # flags


@cache
def _static() -> dict[str, Any]:
    """What does not depend on the rules (openapi_document copies it)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "nba",
            "version": __version__,
            "description": "Real-time next-best-action decisioning. Errors are RFC 9457 problem+json "
            "with a stable `code` and field paths in `errors`.",
        },
        "paths": {
            "/v1/decide": {
                "post": {
                    "summary": "Rank the best actions for a customer on a channel",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("DecideRequest")}},
                    },
                    "description": "409 request_id_reused: the request_id named a different request for this "
                    "customer within the channel's request_window.",
                    "responses": {"200": _json(_ref("Decision")), **_problems(400, 408, 409, 413, 415, 503)},
                }
            },
            "/v1/events": {
                "post": {
                    "summary": "Report what happened (idempotent on event_id; a batch is validated whole)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("EventsRequest")}},
                    },
                    "description": "Events are idempotent on event_id: sending a batch again, after a 503, a timeout "
                    "or a lost connection, is always safe (each event counts and is learned from "
                    "once).",
                    "responses": {
                        "202": _json(_ref("EventsAccepted"), "Accepted"),
                        **_problems(400, 408, 413, 415, 503),
                    },
                }
            },
            "/v1/customers:bulk": {
                "post": {
                    "summary": "Replace (or merge) many profiles: JSON lines, one customer each",
                    "description": 'The CRM\'s push: each line is `{"customer_id": ..., "attributes": '
                    "{...}}`, checked and stored as PUT (`mode=merge`: as PATCH) does, many at once. A bad line "
                    "is listed in `errors` and the others go on; nothing of a bad line is stored. At most "
                    f"{wire.MAX_BULK_BODY // 2**20} MiB and {wire.MAX_BULK_LINES:,} lines per request (413, "
                    f"nothing stored); a line longer than {wire.MAX_BULK_LINE:,} characters is rejected. A 4xx "
                    "stores nothing; after a 503 some lines may be stored: send the request again (a "
                    "replacement is idempotent).",
                    "parameters": [
                        {
                            "name": "mode",
                            "in": "query",
                            "schema": {"enum": ["replace", "merge"], "default": "replace"},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/x-ndjson": {
                                "schema": {
                                    "type": "array",
                                    "maxItems": wire.MAX_BULK_LINES,
                                    "items": _ref("CustomerLine"),
                                    "description": "one CustomerLine per line (JSON lines), not a JSON array",
                                }
                            }
                        },
                    },
                    "responses": {"200": _json(_ref("BulkResult")), **_problems(400, 408, 413, 415, 503)},
                }
            },
            "/v1/customers/{customer_id}": {
                "parameters": [_CUSTOMER_ID],
                "put": {
                    "summary": "Replace a profile's attributes",
                    "requestBody": _BODY_CUSTOMER,
                    "responses": {"200": _json(_ref("Customer")), **_problems(400, 408, 413, 415, 503)},
                },
                "patch": {
                    "summary": "Merge attributes (JSON merge patch: null removes)",
                    "requestBody": _BODY_PATCH,
                    "responses": {"200": _json(_ref("Customer")), **_problems(400, 408, 409, 413, 415, 503)},
                },
                "get": {
                    "summary": "Profile with segments and contact-history summary",
                    "description": "409 stored_data_unreadable: the stored profile cannot be read (PUT "
                    "replaces it, DELETE erases it)",
                    "responses": {"200": _json(_ref("Customer")), **_problems(400, 404, 409, 503)},
                },
                "delete": {
                    "summary": "Erase everything nba holds about the customer",
                    "description": "Deletes every key of the customer and the learner's pending events "
                    "for it. For 30 days, events for this id are accepted and dropped "
                    "(`erased` in the answer) and decisions are answered but not "
                    "recorded, unless a profile is written for it again. Redis's files "
                    "on disk are rewritten within NBA_ERASE_REWRITE_SECONDS.",
                    "responses": {"204": {"description": "Erased"}, **_problems(400, 503)},
                },
            },
            "/v1/rules": {"get": {"summary": "The rules in use", "responses": {"200": _json(_ref("Rules"))}}},
            "/v1/rules/reload": {
                "post": {
                    "summary": "Re-read the rules directory; a valid set becomes every process's within ~1 s",
                    "responses": {"200": _json(_ref("RulesReloaded")), **_problems(409, 422, 503)},
                }
            },
            "/v1/rules/rollback": {
                "post": {
                    "summary": "Make the previously published rule set current again, for every process",
                    "description": "As `nba rules rollback`: stays until the rules directory changes or is reloaded.",
                    "responses": {"200": _json(_ref("RulesRolledBack")), **_problems(409, 503)},
                }
            },
            "/v1/decisions/export": {
                "get": {
                    "summary": "Every decision record with its rewards, as JSON lines (what `nba log export` writes)",
                    "responses": {
                        "200": {
                            "description": "one decision record per line",
                            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
                        },
                        **_problems(503),
                    },
                }
            },
            "/v1/keys": {
                "get": {"summary": "The API keys (never their secrets)", "responses": {"200": _json(_ref("Keys"))}},
                "post": {
                    "summary": "Create an API key; its secret is in the answer, and nowhere else, ever",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("KeyRequest")}}},
                    "responses": {"201": _json(_ref("Key"), "Created"), **_problems(400, 408, 413, 415, 503)},
                },
            },
            "/v1/keys/{key_id}": {
                "parameters": [
                    {"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}},
                ],
                "delete": {
                    "summary": "Revoke an API key: every process refuses it within about a second",
                    "responses": {"204": {"description": "Revoked"}, **_problems(404, 503)},
                },
            },
            "/v1/audit": {
                "get": {
                    "summary": "The audit trail: erasures, rule reloads and rollbacks, key changes",
                    "parameters": [
                        {"name": "after", "in": "query", "schema": {"type": "string", "pattern": "^\\d+(-\\d+)?$"}},
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": wire.MAX_AUDIT_ENTRIES},
                        },
                        {"name": "action", "in": "query", "schema": {"enum": list(audit.ACTIONS)}},
                        {
                            "name": "customer_id",
                            "in": "query",
                            "schema": _ID,
                            "description": "only the erasure of this customer (matched by its keyed hash)",
                        },
                    ],
                    "responses": {"200": _json(_ref("AuditEntries")), **_problems(400, 503)},
                }
            },
            "/v1/outbound/runs": {
                "post": {
                    "summary": "Start an outbound run: each customer's actions on a channel within its capacity",
                    "description": "Runs in the background; poll its document (Location). A real run records "
                    "each selection as a decision, counts it against the channel's capacity for the "
                    "day and sets the channel's capacity price; `dry_run: true` only reports. 409 "
                    "run_in_progress: another real run is in progress (one at a time).",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("OutboundRunRequest")}},
                    },
                    "responses": {
                        "202": _json(_ref("OutboundRun"), "Started"),
                        **_problems(400, 408, 409, 413, 415, 503),
                    },
                },
                "get": {
                    "summary": "The newest outbound runs (without their reports)",
                    "responses": {"200": _json(_ref("OutboundRuns")), **_problems(503)},
                },
            },
            "/v1/outbound/runs/{run_id}": {
                "parameters": [_RUN_ID],
                "get": {
                    "summary": "A run: state, progress and, once done, its report",
                    "responses": {"200": _json(_ref("OutboundRun")), **_problems(400, 404, 503)},
                },
            },
            "/v1/outbound/runs/{run_id}/selection": {
                "parameters": [_RUN_ID],
                "get": {
                    "summary": "The run's selection for lead management: a line per customer and action",
                    "description": "409 run_not_done while it runs or when it failed; 409 selection_in_file for a "
                    "run made on the command line (its selection is in its file).",
                    "parameters": [
                        {"name": "format", "in": "query", "schema": {"enum": ["jsonl", "csv"]}},
                        {
                            "name": "include",
                            "in": "query",
                            "schema": {"type": "string"},
                            "description": "comma-separated profile attributes added to each line as they are now "
                            "(an e-mail address); needs customers.read (crm, admin)",
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "JSON lines (default) or CSV with a header",
                            "content": {
                                "application/x-ndjson": {"schema": {"type": "string"}},
                                "text/csv": {"schema": {"type": "string"}},
                            },
                        },
                        **_problems(400, 404, 409, 503),
                    },
                },
            },
            "/v1/actions/stats": {
                "get": {
                    "summary": "Per action and segment key: events and posterior",
                    "responses": {"200": _json(_ref("ActionStats")), **_problems(503)},
                }
            },
            "/v1/board/performance": {
                "get": {
                    "summary": "Offer performance per action and channel over a period, by hour or day",
                    "description": "From the learner's counters: each event id once, in the hour of its own "
                    "time, on the channel and arm of the decision it answers. Hours are kept "
                    f"{keys.PERF_HOUR_DAYS} days, days {keys.PERF_DAY_DAYS} days.",
                    "parameters": [
                        {"name": "from", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                        {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                        {"name": "bucket", "in": "query", "schema": {"enum": ["hour", "day"]}},
                        {"name": "channel", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {"200": _json(_ref("Performance")), **_problems(400, 503)},
                }
            },
            "/v1/board/learning": {
                "get": {
                    "summary": "Learning health: learner lag, model age, model vs control, degraded share",
                    "responses": {"200": _json(_ref("LearningHealth")), **_problems(503)},
                }
            },
            "/v1/rules/versions": {
                "get": {
                    "summary": "The rule sets a rollback can reach and every change of the current one",
                    "responses": {"200": _json(_ref("RulesVersions")), **_problems(503)},
                }
            },
            "/v1/rules/diff": {
                "get": {
                    "summary": "What changed between two kept rule sets, file by file (unified diffs)",
                    "parameters": [
                        {"name": "from", "in": "query", "required": True, "schema": _VERSION},
                        {"name": "to", "in": "query", "required": True, "schema": _VERSION},
                    ],
                    "responses": {"200": _json(_ref("RulesDiff")), **_problems(400, 404, 503)},
                }
            },
            "/board/session": {
                "get": {
                    "summary": "Who the board is signed in as, and the CSRF token its changes carry",
                    "description": "401 signed_out without a valid session cookie (a server without keys "
                    "answers `open: true`).",
                    "responses": {"200": _json(_ref("BoardSession")), **_problems(401, 503)},
                },
                "post": {
                    "summary": "Sign in to the board: an API key for an HttpOnly, SameSite=Strict cookie",
                    "description": "Roles marketer, analyst, operator and admin (403 board_role otherwise). "
                    "The cookie admits the key's role to the API for 12 hours or until the key is revoked or "
                    "expires; a request it admits that is not a GET must carry X-CSRF-Token.",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["api_key"],
                                    "properties": {"api_key": {"type": "string"}},
                                }
                            }
                        },
                    },
                    "responses": {"200": _json(_ref("BoardSession")), **_problems(400, 401, 403, 413, 415, 503)},
                },
                "delete": {
                    "summary": "Sign out: the cookie is cleared (needs X-CSRF-Token)",
                    "responses": {"204": {"description": "Signed out"}, **_problems(401, 403, 503)},
                },
            },
            "/healthz": {
                "get": {
                    "summary": "The process can serve (503: restart it)",
                    "responses": {"200": _json(_ref("Status")), **_problems(503)},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Redis reachable and rules loaded",
                    "responses": {"200": _json(_ref("Status")), **_problems(503)},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": _json({"type": "object"})}}},
            "/board": _BOARD_PAGE,
            "/board/": _BOARD_PAGE,
            "/board/{asset}": {
                "get": {
                    "summary": "A file of the steering board's page (script, style, icon)",
                    "parameters": [{"name": "asset", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": {"description": "The file", "content": {"*/*": {"schema": {"type": "string"}}}},
                        "304": {"description": "Not modified since the ETag in If-None-Match"},
                        **_problems(404),
                    },
                }
            },
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API key from `nba keys create` (docs/access.md); a server on loopback "
                    "with no keys needs none",
                }
            },
        },
        "security": [{"bearer": []}],
    }
