"""Wire formats: parse and check request bodies into typed requests, every limit explicit.

A body is checked whole and every problem is reported with its field path, so a client fixes a request
in one round and nothing is half-applied.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Collection, Mapping
from typing import Any, NoReturn

import orjson

from nba.access.apikeys import DEFAULT_RATE, KeyRequest
from nba.access.audit import ACTIONS as AUDIT_ACTIONS
from nba.customers.bulk import Rejected, Summary
from nba.domain import EVENT_TYPES, DecideRequest, Decision, EventIn, check_id, zoned_time
from nba.errors import FieldError, InvalidJson, InvalidRequest, PayloadTooLarge
from nba.evaluation.performance import Period
from nba.learning.ingest import IngestResult
from nba.outbound.run import RunRequest, parse_send_time
from nba.rules import profile as profiles
from nba.rules.rulebook import Rulebook
from nba.store import keys
from nba.store.keys import DEDUPE_WINDOW

MAX_DECIDE_BODY = 64 * 1024
MAX_CUSTOMER_BODY = 256 * 1024
MAX_EVENTS_BODY = 4 * 1024 * 1024
MAX_EVENTS = 1000
MAX_BULK_BODY = 16 * 1024 * 1024  # POST /v1/customers:bulk: bytes of JSON lines,
MAX_BULK_LINES = 10_000  # lines (about half a second of writing on a small machine),
MAX_BULK_LINE = MAX_CUSTOMER_BODY  # and characters of one line (longer: that line is rejected)
BULK_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines")
MAX_CONTEXT_KEYS = 32
MAX_CONTEXT_KEY = 64
MAX_CONTEXT_STRING = 256
MAX_PROPERTIES_BYTES = 4096
MAX_PROPERTIES_DEPTH = 16  # nesting levels inside an event's properties
MAX_FUTURE_SECONDS = 300  # clock skew tolerated on event timestamps

# No glob or hash-tag characters: ids end up inside Redis key names, SCAN patterns and the packed history
# (whose separators are `|` and newline). Always fullmatch: with re.match, `$` also matches before a
# final newline, and one accepted "action\n" made every later read of that customer fail.
CONTEXT_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"request body is not valid JSON: {exc}") from None


def _object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest(f"{what} must be a JSON object", errors=[FieldError("", "must be a JSON object")])
    return body


def _unknown(body: dict[str, Any], allowed: tuple[str, ...], prefix: str, errors: list[FieldError]) -> None:
    for key in body:
        if key not in allowed:
            errors.append(FieldError(f"{prefix}{key}", f"unknown field; expected one of {', '.join(allowed)}"))


def _raise(errors: list[FieldError], what: str) -> NoReturn:
    raise InvalidRequest(f"{what}: {len(errors)} problem(s), see errors", errors=errors)


def check_context(value: Any, field: str, errors: list[FieldError]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.append(FieldError(field, "must be an object"))
        return {}
    if len(value) > MAX_CONTEXT_KEYS:
        errors.append(FieldError(field, f"at most {MAX_CONTEXT_KEYS} keys"))
        return {}
    for key, v in value.items():
        f = f"{field}.{key}"
        if len(key) > MAX_CONTEXT_KEY or not CONTEXT_KEY_RE.fullmatch(key):
            errors.append(FieldError(f, f"key must be an identifier of at most {MAX_CONTEXT_KEY} characters"))
        elif isinstance(v, str):
            if len(v) > MAX_CONTEXT_STRING:
                errors.append(FieldError(f, f"at most {MAX_CONTEXT_STRING} characters"))
        elif isinstance(v, float) and not math.isfinite(v):
            errors.append(FieldError(f, "must be a finite number"))
        elif v is not None and not isinstance(v, bool | int | float):
            errors.append(FieldError(f, "must be a string, number, boolean or null (no nesting)"))
    return value


def whole(value: Any) -> int | None:
    """A JSON integer, also written as 3.0 (JSON Schema's `integer` is any number without a fraction)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


DECIDE_FIELDS = (
    "customer_id",
    "channel",
    "context",
    "limit",
    "explain",
    "contact_id",
    "dry_run",
    "request_id",
    "profile",
)


def parse_decide(body: Any, rulebook: Rulebook) -> DecideRequest:
    b = _object(body, "decide request")
    errors: list[FieldError] = []
    _unknown(b, DECIDE_FIELDS, "", errors)
    customer_id = check_id(b.get("customer_id"), "customer_id", errors)
    channel = b.get("channel")
    limit = 0
    if channel is None:
        errors.append(FieldError("channel", "is required"))
    elif not isinstance(channel, str) or channel not in rulebook.channels:
        errors.append(FieldError("channel", f"unknown channel; one of {', '.join(rulebook.channels)}"))
    else:
        ch = rulebook.channels[channel]
        raw = whole(b.get("limit", ch.default_limit))
        if raw is None or not 1 <= raw <= ch.max_limit:
            errors.append(FieldError("limit", f"must be a whole number from 1 to {ch.max_limit} on {channel}"))
        else:
            limit = raw
    context = check_context(b.get("context"), "context", errors)
    explain = b.get("explain", False)
    if not isinstance(explain, bool):
        errors.append(FieldError("explain", "must be true or false"))
    contact_id = check_id(b.get("contact_id"), "contact_id", errors, required=False)
    dry_run = b.get("dry_run", False)
    if not isinstance(dry_run, bool):
        errors.append(FieldError("dry_run", "must be true or false"))
    request_id = check_id(b.get("request_id"), "request_id", errors, required=False)
    profile = _made_up_profile(b, dry_run is True, rulebook, errors)
    if errors or customer_id is None or not isinstance(channel, str) or not isinstance(explain, bool):
        _raise(errors, "invalid decide request")
    return DecideRequest(
        customer_id, channel, context, limit, explain, contact_id, dry_run is True, request_id, profile
    )


def _made_up_profile(
    b: dict[str, Any], dry_run: bool, rulebook: Rulebook, errors: list[FieldError]
) -> dict[str, Any] | None:
    """A dry run's `profile`: attributes checked as PUT /v1/customers/{id} checks them (the decision
    explorer's made-up customer). Only in a dry run: a real decision is made on what the CRM said."""
    if "profile" not in b:
        return None
    attrs = b["profile"]
    if not dry_run:
        errors.append(FieldError("profile", 'only with "dry_run": true (a made-up profile records nothing)'))
    elif not isinstance(attrs, dict):
        errors.append(FieldError("profile", "must be an object of attributes, as the attributes of a profile"))
    else:
        problems = profiles.check_attributes(rulebook, attrs, prefix="profile")
        errors.extend(problems)
        return None if problems else profiles.normalise(rulebook, attrs)
    return None


_EVENT_FIELDS = ("event_id", "type", "customer_id", "action_id", "decision_id", "channel", "ts", "properties")


def parse_events(body: Any, rulebook: Rulebook, now: float) -> list[EventIn]:
    b = _object(body, "events request")
    errors: list[FieldError] = []
    _unknown(b, ("events",), "", errors)
    items = b.get("events")
    if not isinstance(items, list) or not items:
        errors.append(FieldError("events", "must be a non-empty list"))
        _raise(errors, "invalid events request")
    if len(items) > MAX_EVENTS:
        errors.append(FieldError("events", f"at most {MAX_EVENTS} events per request, got {len(items)}"))
        _raise(errors, "invalid events request")
    out: list[EventIn] = []
    for i, item in enumerate(items):
        p = f"events[{i}]"
        if not isinstance(item, dict):
            errors.append(FieldError(p, "must be an object"))
            continue
        _unknown(item, _EVENT_FIELDS, f"{p}.", errors)
        event_id = check_id(item.get("event_id"), f"{p}.event_id", errors)
        customer_id = check_id(item.get("customer_id"), f"{p}.customer_id", errors)
        action_id = check_id(item.get("action_id"), f"{p}.action_id", errors)
        if action_id is not None and action_id not in rulebook.action_index:
            # not stored: every action id would otherwise add a permanent counter field (event counts)
            errors.append(FieldError(f"{p}.action_id", f"unknown action in rules version {rulebook.version}"))
            action_id = None
        decision_id = check_id(item.get("decision_id"), f"{p}.decision_id", errors, required=False)
        etype = item.get("type")
        if etype not in EVENT_TYPES:
            errors.append(FieldError(f"{p}.type", f"must be one of {', '.join(EVENT_TYPES)}"))
        channel = item.get("channel")
        if not isinstance(channel, str) or channel not in rulebook.channels:
            errors.append(FieldError(f"{p}.channel", f"unknown channel; one of {', '.join(rulebook.channels)}"))
        ts = _timestamp(item.get("ts"), f"{p}.ts", now, errors)
        props = item.get("properties", {})
        if not isinstance(props, dict):
            errors.append(FieldError(f"{p}.properties", "must be an object"))
        elif too_deep(props, MAX_PROPERTIES_DEPTH):  # before dumps, which stops at 255 levels
            errors.append(FieldError(f"{p}.properties", f"nested deeper than {MAX_PROPERTIES_DEPTH} levels"))
        elif len(orjson.dumps(props)) > MAX_PROPERTIES_BYTES:
            errors.append(FieldError(f"{p}.properties", f"at most {MAX_PROPERTIES_BYTES} bytes as JSON"))
        if (
            not errors
            and event_id is not None
            and customer_id is not None
            and action_id is not None
            and isinstance(etype, str)
            and isinstance(channel, str)
            and isinstance(props, dict)
        ):
            out.append(EventIn(event_id, etype, customer_id, action_id, channel, decision_id, ts, props))
    if errors:
        _raise(errors, "invalid events batch, nothing was applied")
    return out


def too_deep(value: Any, depth: int) -> bool:
    """Whether objects and lists nest more than `depth` levels (`value` itself is level 1). Iterative, so
    a body nested a thousand levels costs no recursion."""
    level: list[Any] = [value]
    for _ in range(depth):
        level = [
            child
            for v in level
            for child in (v.values() if isinstance(v, dict) else v if isinstance(v, list) else ())
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return True


def _timestamp(value: Any, field: str, now: float, errors: list[FieldError]) -> float:
    if value is None:
        return now
    if not isinstance(value, str) or len(value) > 40:
        errors.append(FieldError(field, "must be an ISO 8601 timestamp such as 2026-11-23T10:00:00Z"))
        return now
    try:
        parsed = dt.datetime.fromisoformat(value.upper())  # RFC 3339 allows a lowercase t and z
    except ValueError:
        errors.append(FieldError(field, "must be an ISO 8601 timestamp such as 2026-11-23T10:00:00Z"))
        return now
    if parsed.tzinfo is None:
        errors.append(FieldError(field, "needs a time zone, e.g. a trailing Z for UTC"))
        return now
    ts = parsed.timestamp()
    if ts > now + MAX_FUTURE_SECONDS:
        errors.append(FieldError(field, f"is more than {MAX_FUTURE_SECONDS} s in the future"))
    elif ts < now - DEDUPE_WINDOW:
        errors.append(FieldError(field, f"is older than {DEDUPE_WINDOW // 86400} days, the de-duplication window"))
    return ts


def parse_key_request(body: Any) -> KeyRequest:
    """POST /v1/keys: the shape here, the values in apikeys.create (which names every wrong field)."""
    b = _object(body, "key request")
    errors: list[FieldError] = []
    _unknown(b, ("name", "role", "channels", "origins", "expires", "rate", "unsigned_customers"), "", errors)
    for name in ("name", "role"):
        if not isinstance(b.get(name), str):
            errors.append(FieldError(name, "is required, a string"))
    lists: dict[str, tuple[str, ...]] = {}
    for name in ("channels", "origins"):
        v = b.get(name, [])
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v) or len(v) > 64:
            errors.append(FieldError(name, "must be a list of at most 64 strings"))
        else:
            lists[name] = tuple(v)
    expires = b.get("expires")
    if expires is not None and not isinstance(expires, str):
        errors.append(FieldError("expires", "a duration (90d, 12h) or an ISO 8601 date or time, as a string"))
    rate = b.get("rate", DEFAULT_RATE)
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        errors.append(FieldError("rate", "must be a number (requests per second; 0: unlimited)"))
    unsigned = b.get("unsigned_customers", False)
    if not isinstance(unsigned, bool):
        errors.append(FieldError("unsigned_customers", "must be true or false"))
    if errors:
        _raise(errors, "invalid key request")
    return KeyRequest(b["name"], b["role"], lists["channels"], lists["origins"], expires, float(rate), unsigned)


MAX_AUDIT_ENTRIES = 10_000


def parse_audit_query(query: Mapping[str, str]) -> dict[str, Any]:
    """GET /v1/audit?after=<entry id>&limit=N&action=A&customer_id=ID"""
    errors: list[FieldError] = []
    _unknown(dict(query), ("after", "limit", "action", "customer_id"), "", errors)
    after = query.get("after", "0")
    if not re.fullmatch(r"\d+(-\d+)?", after):
        errors.append(FieldError("after", "an entry id (1700000000000-0) or 0"))
    raw_limit = query.get("limit", "1000")
    limit = int(raw_limit) if raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) < 7 else None
    if limit is None or not 1 <= limit <= MAX_AUDIT_ENTRIES:
        errors.append(FieldError("limit", f"a whole number from 1 to {MAX_AUDIT_ENTRIES}"))
    action = query.get("action")
    if action is not None and action not in AUDIT_ACTIONS:
        errors.append(FieldError("action", f"one of {', '.join(AUDIT_ACTIONS)}"))
    cid = check_id(query.get("customer_id"), "customer_id", errors, required=False)
    if errors:
        _raise(errors, "invalid audit query")
    return {"after": after, "limit": limit, "action": action, "customer_id": cid}


MAX_HOUR_BUCKETS = 24 * keys.PERF_HOUR_DAYS  # the board's counters keep hours this long, days longer
MAX_DAY_BUCKETS = keys.PERF_DAY_DAYS


def parse_performance_query(query: Mapping[str, str], channels: Collection[str], now: float) -> Period:
    """GET /v1/board/performance?from=&until=&bucket=hour|day&channel=C: the period, widened to whole
    buckets (UTC). Without until: up to the end of the bucket that holds now; without from: 48 hours
    (hour) or 14 days (day) before until."""
    errors: list[FieldError] = []
    _unknown(dict(query), ("from", "until", "bucket", "channel"), "", errors)
    bucket = query.get("bucket", "hour")
    if bucket not in ("hour", "day"):
        errors.append(FieldError("bucket", "hour or day"))
    step = 24 if bucket == "day" else 1
    channel = query.get("channel")
    if channel is not None and channel not in channels:
        errors.append(FieldError("channel", f"unknown channel; one of {', '.join(channels)}"))
    until = _board_time(query.get("until"), "until", errors)
    # without until: up to the end of the bucket that holds now; with it: an exclusive end, widened
    end_hour = (int(now) // (3600 * step) + 1) * step if until is None else -(-int(until) // (3600 * step)) * step
    start = _board_time(query.get("from"), "from", errors)
    default_hours = 48 if step == 1 else 14 * 24
    start_hour = end_hour - default_hours if start is None else int(start) // (3600 * step) * step
    most = MAX_HOUR_BUCKETS if step == 1 else MAX_DAY_BUCKETS
    if not errors and start_hour >= end_hour:
        errors.append(FieldError("from", "must be before until"))
    elif not errors and (end_hour - start_hour) // step > most:
        errors.append(FieldError("from", f"at most {most} {bucket}s from until (the counters' retention)"))
    if errors:
        _raise(errors, "invalid performance query")
    return Period(start_hour, end_hour, step, channel)


def _board_time(value: str | None, field: str, errors: list[FieldError]) -> float | None:
    if value is None:
        return None
    parsed = zoned_time(value)
    try:
        ts = parsed.timestamp() if parsed is not None else None
    except (ValueError, OverflowError):
        ts = None
    if ts is None:
        errors.append(FieldError(field, "must be an ISO 8601 time with its zone, such as 2026-12-01T00:00:00Z"))
    elif not 0 <= ts < 253370764800:  # a bucket's end must still be a date Python can write
        errors.append(FieldError(field, "must lie between the years 1970 and 9998"))
        ts = None
    return ts


def parse_rules_diff_query(query: Mapping[str, str]) -> tuple[str, str]:
    """GET /v1/rules/diff?from=V&to=V"""
    errors: list[FieldError] = []
    _unknown(dict(query), ("from", "to"), "", errors)
    versions = []
    for field in ("from", "to"):
        v = query.get(field)
        if v is None or not re.fullmatch(r"[0-9A-Za-z_.-]{1,128}", v):
            errors.append(FieldError(field, "is required: a rules version (GET /v1/rules/versions lists them)"))
        versions.append(v or "")
    if errors:
        _raise(errors, "invalid rules diff query")
    return versions[0], versions[1]


def parse_attributes(body: Any) -> dict[str, Any]:
    b = _object(body, "customer request")
    errors: list[FieldError] = []
    _unknown(b, ("attributes",), "", errors)
    attrs = b.get("attributes")
    if not isinstance(attrs, dict):
        errors.append(FieldError("attributes", "is required and must be an object"))
    if errors or not isinstance(attrs, dict):
        _raise(errors, "invalid customer request")
    return attrs


def parse_bulk_query(query: Mapping[str, str]) -> bool:
    """POST /v1/customers:bulk?mode=replace|merge: whether records merge (PATCH) or replace (PUT)."""
    errors: list[FieldError] = []
    _unknown(dict(query), ("mode",), "", errors)
    mode = query.get("mode", "replace")
    if mode not in ("replace", "merge"):
        errors.append(FieldError("mode", "replace (as PUT, the default) or merge (as PATCH)"))
    if errors:
        _raise(errors, "invalid bulk query")
    return mode == "merge"


def bulk_lines(body: bytes) -> str:
    """The body of POST /v1/customers:bulk as text, within the line limit (checked before anything is
    written: a 4xx applies nothing)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            "the body is not UTF-8", errors=[FieldError("body", f"not UTF-8 at byte {exc.start}")]
        ) from None
    lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    if lines > MAX_BULK_LINES:
        raise PayloadTooLarge(
            f"{lines} lines; one request takes at most {MAX_BULK_LINES}: send the rest in further requests",
            errors=[FieldError("body", f"at most {MAX_BULK_LINES} lines")],
        )
    return text


def bulk_body(summary: Summary, rejected: list[Rejected]) -> dict[str, Any]:
    return {
        "imported": summary.imported,
        "rejected": summary.rejected,
        "errors": [
            {"line": r.line, "customer_id": r.customer_id, "field": e.field, "message": e.message}
            for r in rejected
            for e in r.errors
        ],
    }


# ------------------------------------------------------------------------------------- answers


def decision_body(d: Decision) -> dict[str, Any]:
    body: dict[str, Any] = {
        "decision_id": d.decision_id,
        "customer_id": d.customer_id,
        "channel": d.channel,
        "actions": [
            {
                "action_id": a.action_id,
                "rank": a.rank,
                "group": a.group,
                "score": a.score,
                "propensity": a.propensity,
                "probability": a.probability,
                "value": a.value,
                "content": a.content,
                "reason": a.reason,
            }
            for a in d.actions
        ],
        "segments": d.segments,
        "rules_version": d.rules_version,
        "model_version": d.model_version,
        "degraded": d.degraded,
    }
    if d.dry_run:
        body["dry_run"] = True
    if d.repeat:
        body["repeat"] = True
    if d.explain is not None:
        body["explain"] = d.explain
    return body


def ingest_body(result: IngestResult) -> dict[str, int]:
    return {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "credited": result.credited,
        "unattributed": result.unattributed,
        "erased": result.erased,
        "unknown_customer": result.unknown,
    }


def rules_body(rb: Rulebook) -> dict[str, Any]:
    return {
        "version": rb.version,
        "segments_version": rb.segments_version,
        "channels": [
            {
                "name": c.name,
                "direction": c.direction,
                "default_limit": c.default_limit,
                "max_limit": c.max_limit,
                "consent": c.consent,
            }
            for c in rb.channels.values()
        ],
        "groups": [{"name": g, "weight": w} for g, w in rb.group_weights.items()],
        "segments": [{"name": s.name, "kind": s.kind, "description": s.description} for s in rb.segments],
        "actions": [
            {
                "id": a.id,
                "name": a.name,
                "group": a.group,
                "kind": a.kind,
                "channels": list(a.channels),
                "value": a.value,
                "weight": a.weight,
                "mandatory": a.mandatory,
                "file": a.file,
                "content": a.content,
                "reason": a.reason,
            }
            for a in rb.actions
        ],
        "learning": {
            "models": {ch: rb.learning.for_channel(ch).model for ch in rb.channels},
            "segment_key": list(rb.learning.segment_key),
            "rewards": dict(rb.learning.rewards),
        },
    }


MAX_OUTBOUND_BODY = 16 * 1024 * 1024  # a list population of MAX_OUTBOUND_LIST ids of up to 128 characters
MAX_OUTBOUND_LIST = 100_000
RUN_ID = re.compile(r"run-[0-9a-f]{20}")


def parse_outbound_run(body: Any, now: float) -> RunRequest:
    """POST /v1/outbound/runs: the shape here; outbound.run.check names what the rules cannot run."""
    b = _object(body, "outbound run")
    errors: list[FieldError] = []
    if "include" in b:  # an easy mistake: profile data goes to those who may read customers, at download
        errors.append(
            FieldError(
                "include",
                "ask for profile attributes when downloading the selection: GET /v1/outbound/runs/{id}/selection"
                "?include=email (needs customers.read)",
            )
        )
    allowed = ("channel", "segment", "customer_ids", "dry_run", "send_at", "budget", "per_customer", "include")
    _unknown(b, allowed, "", errors)
    channel = b.get("channel")
    if not isinstance(channel, str):
        errors.append(FieldError("channel", "is required, a string"))
    segment = b.get("segment")
    if segment is not None and not isinstance(segment, str):
        errors.append(FieldError("segment", "must be a segment name"))
    ids = b.get("customer_ids")
    if ids is not None:
        if not isinstance(ids, list) or len(ids) > MAX_OUTBOUND_LIST:
            errors.append(FieldError("customer_ids", f"must be a list of at most {MAX_OUTBOUND_LIST:,} customer ids"))
            ids = None
        else:
            for i, cid in enumerate(ids):
                if check_id(cid, f"customer_ids[{i}]", errors) is None:
                    break  # one is enough to say what is wrong
        if segment is not None:
            errors.append(FieldError("customer_ids", "give a segment or a list of customers, not both"))
    dry_run = b.get("dry_run", False)
    if not isinstance(dry_run, bool):
        errors.append(FieldError("dry_run", "must be true or false"))
    send_at = None
    if b.get("send_at") is not None:
        send_at = _send_time(b["send_at"], now, errors)
    budget = b.get("budget")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int | float) or budget < 0):
        errors.append(FieldError("budget", "must be a number >= 0"))
    per_customer = b.get("per_customer")
    if per_customer is not None:
        # JSON Schema's integer includes 5.0
        whole = isinstance(per_customer, int | float) and not isinstance(per_customer, bool)
        if not whole or not float(per_customer).is_integer() or not 1 <= per_customer <= 1000:
            errors.append(FieldError("per_customer", "must be a whole number, 1 or more"))
        else:
            per_customer = int(per_customer)
    if errors:
        _raise(errors, "invalid outbound run")
    return RunRequest(
        channel=channel,  # type: ignore[arg-type]
        segment=segment,
        customer_ids=None if ids is None else tuple(ids),
        dry_run=dry_run,
        send_at=send_at,
        budget=None if budget is None else float(budget),
        per_customer=per_customer,
    )


def _send_time(value: Any, now: float, errors: list[FieldError]) -> float | None:
    parsed = parse_send_time(value, now) if isinstance(value, str) else "must be a string"
    if isinstance(parsed, str):
        errors.append(FieldError("send_at", parsed))
        return None
    return parsed
