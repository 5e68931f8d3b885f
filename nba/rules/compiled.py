"""Conditions turned into nested closures once per rule set, for the profile segments every profile write
materialises. conditions.evaluate walks the condition tree and dispatches on each node's type and
operator at every call; for a bulk import that walk was 24 of the 53 microseconds a record cost. A
closure decides type and operator once, here. It must agree with conditions.evaluate on every input:
tests/unit/test_compiled_segments.py compares the two on generated profiles for every shipped segment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from nba.rules.conditions import (
    Combine,
    Condition,
    DaysSince,
    FieldTest,
    InSegment,
    _number,
    _ordered,
    check_value,
    days_between,
    lookup,
)
from nba.rules.rulebook import Rulebook

# profile, segments so far, now
Test = Callable[[Mapping[str, Any], set[str], float], bool]


def compile_condition(c: Condition) -> Test:
    """`c` as a function of (profile, segments, now); the request context is empty (profile segments)."""
    if isinstance(c, Combine):
        children = tuple(compile_condition(ch) for ch in c.children)
        if c.op == "all":
            return lambda p, s, n: all(ch(p, s, n) for ch in children)
        if c.op == "any":
            return lambda p, s, n: any(ch(p, s, n) for ch in children)
        return lambda p, s, n: not any(ch(p, s, n) for ch in children)
    if isinstance(c, InSegment):
        name = c.segment
        return lambda p, s, n: name in s
    if isinstance(c, DaysSince):
        path, op, operand = c.path, c.op, c.operand

        def days(p: Mapping[str, Any], s: set[str], n: float) -> bool:
            d = days_between(lookup(p, path), n)
            return d is not None and _ordered(op, d, operand)

        return days
    return _field_test(c)


def _field_test(c: FieldTest) -> Test:
    if c.source == "context":  # no context while materialising: every test sees a missing value
        missing = check_value(c.op, None, c.operand)
        return lambda p, s, n: missing
    get = _getter(c.path)
    op, operand = c.op, c.operand
    if op == "exists":
        want = bool(operand)
        return lambda p, s, n: (get(p) is not None) is want
    if op == "eq":
        return lambda p, s, n: (v := get(p)) is not None and bool(v == operand)
    if op == "contains":
        return lambda p, s, n: isinstance(v := get(p), list) and operand in v
    if op in ("gt", "gte", "lt", "lte"):
        bound = float(operand)
        compare: Callable[[float], bool] = {
            "gt": bound.__lt__,
            "gte": bound.__le__,
            "lt": bound.__gt__,
            "lte": bound.__ge__,
        }[op]

        def ordered(p: Mapping[str, Any], s: set[str], n: float) -> bool:
            v = get(p)
            if v.__class__ is float or v.__class__ is int:  # what JSON gives: skip the general check
                return compare(float(v))
            return _number(v) is not None and compare(float(v))

        return ordered
    return lambda p, s, n: check_value(op, get(p), operand)


def _getter(path: tuple[str, ...]) -> Callable[[Mapping[str, Any]], Any]:
    if len(path) == 1:
        key = path[0]
        return lambda p: p.get(key)
    if len(path) == 2:
        first, second = path

        def nested(p: Mapping[str, Any]) -> Any:
            v = p.get(first)
            return v.get(second) if isinstance(v, Mapping) else None

        return nested
    return lambda p: lookup(p, path)


class ProfileSegments:
    """The profile segments of one rule set, compiled once (Rulebook.profile_segments): `bits` are what
    segments.materialise stores with a profile."""

    def __init__(self, rulebook: Rulebook):
        self.version = rulebook.segments_version
        self._tests = [
            (1 << i, s.name, compile_condition(s.condition))
            for i, s in enumerate(rulebook.segments)
            if s.kind == "profile"
        ]

    def bits(self, attributes: Mapping[str, Any], now: float) -> int:
        member: set[str] = set()
        bits = 0
        for bit, name, test in self._tests:
            if test(attributes, member, now):
                member.add(name)
                bits |= bit
        return bits
