"""Conditions in plain words, for the people who read explanations (an agent, a marketer): "whose
monthly spend is at least 60 (it is 45)" instead of `profile.monthly_spend gte 60`. A segment reads as
its `label` from segments.yaml, or else as its own condition in these words."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nba.rules.conditions import Combine, Condition, DaysSince, Facts, FieldTest, InSegment, evaluate, lookup

_OPS = {
    "eq": "is",
    "ne": "is not",
    "gt": "is more than",
    "gte": "is at least",
    "lt": "is less than",
    "lte": "is at most",
    "in": "is one of",
    "not_in": "is none of",
    "contains": "include",
}
_DAYS = {
    "eq": "exactly",
    "ne": "not",
    "gt": "more than",
    "gte": "at least",
    "lt": "less than",
    "lte": "at most",
}


def words(name: str) -> str:
    """An attribute or segment name as words: monthly_spend -> monthly spend, consents.email -> email consent."""
    parts = name.split(".")
    if len(parts) == 2 and parts[0] == "consents":
        return f"{parts[1].replace('_', ' ')} consent"
    return " ".join(p.replace("_", " ") for p in parts)


def value(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, tuple | list):
        return ", ".join(value(x) for x in v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def phrase(c: Condition, labels: Mapping[str, str]) -> str:
    """What the condition asks of a customer, as a phrase after "customers ...": "in the segment mobile
    customers", "whose plan is one of large, unlimited"."""
    if isinstance(c, InSegment):
        return labels.get(c.segment) or f"in {words(c.segment)}"
    if isinstance(c, FieldTest):
        name = words(".".join(c.path))
        if c.op == "exists":
            return f"whose {name} is {'known' if c.operand else 'not known'}"
        if c.source == "context":
            return f"when the contact's {name} {_OPS[c.op]} {value(c.operand)}"
        return f"whose {name} {_OPS[c.op]} {value(c.operand)}"
    if isinstance(c, DaysSince):
        return f"whose {words('.'.join(c.path))} was {_DAYS[c.op]} {value(c.operand)} days ago"
    joined = [phrase(ch, labels) for ch in c.children]
    if c.op == "none":
        return "not " + " nor ".join(joined)
    return (" or " if c.op == "any" else " and ").join(joined)


def actual(c: Condition, facts: Facts) -> str:
    """What this customer or contact has, for a leaf that tests a value: " (it is 45)"; "" otherwise."""
    if isinstance(c, FieldTest) and c.op != "exists":
        found = lookup(facts.context if c.source == "context" else facts.profile, c.path)
        return " (not known)" if found is None else f" (it is {value(found)})"
    if isinstance(c, DaysSince):
        found = lookup(facts.profile, c.path)
        return " (not known)" if found is None else f" (it is {value(found)})"
    return ""


def failing(c: Condition, facts: Facts, labels: Mapping[str, str]) -> str | None:
    """Why `c` is false for these facts, in words: "is only for customers X; this one is not (it is ...)"
    or "is not for customers X, and this one is"; None when it holds."""
    if isinstance(c, Combine):
        if c.op == "all" or c.merged:
            return next((why for ch in c.children if (why := failing(ch, facts, labels)) is not None), None)
        if c.op == "any":
            if evaluate(c, facts):
                return None
            return f"is only for customers {phrase(c, labels)}; this one is none of these"
        held = next((ch for ch in c.children if evaluate(ch, facts)), None)
        if held is None:
            return None
        return f"is not for customers {phrase(held, labels)}, and this one is{actual(held, facts)}"
    if evaluate(c, facts):
        return None
    return f"is only for customers {phrase(c, labels)}; this one is not{actual(c, facts)}"
