"""Repeats of a decide request (its `request_id`): what makes two requests the same one, and the answer
kept so that a repeat gets it again without ranking. Pure: the store keeps the bytes (keys.py, requests).

A page reloaded six times is one page view: without this every reload was a new decision that reserved
what it returned, and the page showed fewer and fewer actions (3, 3, 2, 0, 1, 0).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from typing import Any

import orjson

from nba.domain import DecideRequest, Decision, RankedAction


def fingerprint(req: DecideRequest) -> str:
    """What a repeat must share with the first request: everything that shapes the answer. The customer
    is the key's own; `dry_run` and `profile` never reach here (a preview remembers nothing)."""
    what = [req.channel, req.limit, req.context, req.contact_id, req.explain]
    return hashlib.blake2b(orjson.dumps(what, option=orjson.OPT_SORT_KEYS), digest_size=8).hexdigest()


def answer(d: Decision) -> bytes:
    """The decision as the caller got it (with its explanation when it was asked for), to give again."""
    return orjson.dumps(
        {
            "decision_id": d.decision_id,
            "customer_id": d.customer_id,
            "channel": d.channel,
            "actions": [asdict(a) for a in d.actions],
            "segments": d.segments,
            "rules_version": d.rules_version,
            "model_version": d.model_version,
            "explain": d.explain,
        }
    )


def repeated(raw: bytes) -> Decision:
    """The stored answer as a Decision marked `repeat`. ValueError (or KeyError, TypeError) when the bytes
    are not an answer `answer` wrote."""
    a: dict[str, Any] = orjson.loads(raw)
    return Decision(
        decision_id=a["decision_id"],
        customer_id=a["customer_id"],
        channel=a["channel"],
        actions=[RankedAction(**x) for x in a["actions"]],
        segments=a["segments"],
        rules_version=a["rules_version"],
        model_version=a["model_version"],
        explain=a["explain"],
        repeat=True,
    )
