"""The closed condition vocabulary of rule files, compiled once at load and never `eval`-ed.

    {all: [...]} {any: [...]} {none: [...]}       combinators (several in one mapping are and-ed)
    {in_segment: name}                            segment membership
    {field: a.b, <op>: operand}                   profile attribute test
    {context: key, <op>: operand}                 request context test
    {days_since: date_field, <op>: number}        whole days between a profile date and now

Operators: eq ne gt gte lt lte in not_in contains exists. A missing value fails every test except
`ne`, `not_in` and `exists: false`: "plan ne unlimited" holds for a customer with no plan.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from nba.rules.files import Node, Reader, suggest

Op = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists"]
OPS: tuple[Op, ...] = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists")
_ORDERED = ("gt", "gte", "lt", "lte")
COMBINATORS = ("all", "any", "none")
LEAF_KEYS = ("in_segment", "field", "context", "days_since")

AttributeType = Literal["string", "number", "integer", "boolean", "date", "list", "flags"]
ATTRIBUTE_TYPES: tuple[AttributeType, ...] = ("string", "number", "integer", "boolean", "date", "list", "flags")


@dataclass(frozen=True, slots=True)
class InSegment:
    segment: str


@dataclass(frozen=True, slots=True)
class FieldTest:
    source: Literal["profile", "context"]
    path: tuple[str, ...]
    op: Op
    operand: Any  # hashable: tuples for lists

    def describe(self) -> str:
        return f"{self.source}.{'.'.join(self.path)} {self.op} {self.operand!r}"


@dataclass(frozen=True, slots=True)
class DaysSince:
    path: tuple[str, ...]
    op: Op
    operand: float


Leaf = InSegment | FieldTest | DaysSince


@dataclass(frozen=True, slots=True)
class Combine:
    op: Literal["all", "any", "none"]
    children: tuple[Condition, ...]
    merged: bool = False  # the implicit "and" of several combinators in one mapping (no key of its own)


Condition = Leaf | Combine
ALWAYS = Combine("all", ())


@dataclass(frozen=True, slots=True)
class Facts:
    """What a condition may look at; `now` is a parameter so evaluation is deterministic."""

    profile: Mapping[str, Any]
    context: Mapping[str, Any]
    segments: frozenset[str] | set[str]
    now: float  # epoch seconds


# ---------------------------------------------------------------------------------------------- compile


@dataclass(frozen=True)
class Vocabulary:
    """What conditions in one place may refer to (validated at load, so evaluation never fails)."""

    attributes: Mapping[str, AttributeType]
    segments: frozenset[str]
    allow_context: bool = True


def compile_condition(node: Node, path: str, reader: Reader, vocab: Vocabulary) -> Condition | None:
    m = reader.mapping(node, path)
    if m is None:
        return None
    combinators = [k for k in m if k in COMBINATORS]
    leaves = [k for k in m if k in LEAF_KEYS]
    if combinators and leaves:
        reader.problem(path, f"mixes {combinators[0]!r} with {leaves[0]!r}: put the test inside the list", node.line)
        return None
    if combinators:
        return _combination(node, m, path, reader, vocab)
    if len(leaves) != 1:
        reader.problem(
            path,
            "needs exactly one of "
            + ", ".join(COMBINATORS + LEAF_KEYS)
            + (suggest(next(iter(m)), COMBINATORS + LEAF_KEYS) if m else ""),
            node.line,
        )
        return None
    if leaves[0] == "in_segment":
        return _in_segment(node, m, path, reader, vocab)
    return _test(node, m, leaves[0], path, reader, vocab)


_COMBINE: dict[str, Literal["all", "any", "none"]] = {"all": "all", "any": "any", "none": "none"}


def _combination(node: Node, m: Mapping[str, Node], path: str, reader: Reader, vocab: Vocabulary) -> Condition | None:
    """all / any / none of lists of conditions (several in one mapping: all of them)."""
    for k in m:
        if k not in COMBINATORS:
            reader.problem(f"{path}.{k}", "unknown key" + suggest(k, COMBINATORS), node.lines.get(k))
    parts: list[Condition] = []
    ok = True
    for k in m:
        combine = _COMBINE.get(k)
        if combine is None:
            continue
        items = reader.sequence(m[k], f"{path}.{k}")
        if not items:
            if items is not None:
                reader.problem(f"{path}.{k}", "must not be empty", m[k].line)
            ok = False
            continue
        children = [compile_condition(c, f"{path}.{k}[{i}]", reader, vocab) for i, c in enumerate(items)]
        compiled = [c for c in children if c is not None]
        if len(compiled) < len(children):
            ok = False
            continue
        # kept even with one child: explanations then name the exact list position
        parts.append(Combine(combine, tuple(compiled)))
    if not ok:
        return None
    return parts[0] if len(parts) == 1 else Combine("all", tuple(parts), merged=True)


def _in_segment(node: Node, m: Mapping[str, Node], path: str, reader: Reader, vocab: Vocabulary) -> Condition | None:
    reader.mapping(node, path, allowed=["in_segment"])
    name = reader.text(m["in_segment"], f"{path}.in_segment")
    if name is None:
        return None
    if name not in vocab.segments:
        reader.problem(
            f"{path}.in_segment", f"unknown segment {name!r}" + suggest(name, vocab.segments), m["in_segment"].line
        )
        return None
    return InSegment(name)


def _test(
    node: Node, m: Mapping[str, Node], kind: str, path: str, reader: Reader, vocab: Vocabulary
) -> Condition | None:
    """A test of a context key, a profile attribute or the days since a date attribute."""
    reader.mapping(node, path, allowed=[kind, *OPS])
    ops = [k for k in m if k in OPS]
    if len(ops) != 1:
        reader.problem(path, f"needs exactly one operator of {', '.join(OPS)}", node.line)
        return None
    op: Op = ops[0]
    target = reader.text(m[kind], f"{path}.{kind}", max_len=200)
    if target is None:
        return None
    if kind == "context":
        if not vocab.allow_context:
            reader.problem(f"{path}.context", "context is not available here", m[kind].line)
            return None
        operand = _operand(m[op], f"{path}.{op}", op, None, reader)
        return None if operand is _BAD else FieldTest("context", (target,), op, operand)
    parts = tuple(target.split("."))
    attr_type = vocab.attributes.get(parts[0])
    if attr_type is None:
        reader.problem(
            f"{path}.{kind}",
            f"unknown profile attribute {parts[0]!r}" + suggest(parts[0], vocab.attributes),
            m[kind].line,
        )
        return None
    if (len(parts) > 1 and attr_type != "flags") or len(parts) > 2:
        reader.problem(f"{path}.{kind}", f"{target!r}: only flags attributes have sub-keys", m[kind].line)
        return None
    value_type: AttributeType = "boolean" if len(parts) == 2 else attr_type
    if kind == "days_since":
        return _days_since(m[op], parts, op, value_type, path, reader, m[kind].line)
    operand = _operand(m[op], f"{path}.{op}", op, value_type, reader)
    return None if operand is _BAD else FieldTest("profile", parts, op, operand)


def _days_since(
    operand: Node,
    target: tuple[str, ...],
    op: Op,
    value_type: AttributeType,
    path: str,
    reader: Reader,
    line: int | None,
) -> Condition | None:
    if value_type != "date":
        reader.problem(f"{path}.days_since", f"{'.'.join(target)!r} is a {value_type}, not a date", line)
        return None
    if op not in _ORDERED:
        reader.problem(f"{path}.{op}", "days_since takes gt, gte, lt or lte", operand.line)
        return None
    days = reader.number(operand, f"{path}.{op}")
    return None if days is None else DaysSince(target, op, days)


_BAD = object()


def _operand(node: Node, path: str, op: Op, value_type: AttributeType | None, reader: Reader) -> Any:
    v = node.value
    if op == "exists":
        return v if isinstance(v, bool) else _bad(reader, path, "exists takes true or false", node)
    if op in ("in", "not_in"):
        if not isinstance(v, list) or not v:
            return _bad(reader, path, f"{op} takes a non-empty list", node)
        items = [_scalar(n, f"{path}[{i}]", value_type, reader) for i, n in enumerate(v)]
        return _BAD if any(i is _BAD for i in items) else tuple(items)
    if op == "contains":
        if value_type not in (None, "list"):
            return _bad(reader, path, f"contains needs a list attribute, this one is a {value_type}", node)
        return _scalar(node, path, "string" if value_type else None, reader)
    if value_type == "list":
        return _bad(reader, path, f"a list attribute takes contains, exists, not {op}", node)
    if op in _ORDERED:
        if value_type not in (None, "number", "integer"):
            return _bad(reader, path, f"{op} compares numbers, this attribute is a {value_type}", node)
        n = reader.number(node, path)
        return _BAD if n is None else n
    return _scalar(node, path, value_type, reader)


def _scalar(node: Node, path: str, value_type: AttributeType | None, reader: Reader) -> Any:
    v = node.value
    if isinstance(v, dt.date):
        v = v.isoformat()
    ok = {
        None: isinstance(v, str | int | float | bool),
        "string": isinstance(v, str),
        "date": isinstance(v, str),
        "list": isinstance(v, str),
        "boolean": isinstance(v, bool),
        "number": isinstance(v, int | float) and not isinstance(v, bool),
        "integer": isinstance(v, int | float) and not isinstance(v, bool),
        "flags": False,
    }[value_type]
    if not ok:
        return _bad(reader, path, f"must be a {value_type or 'text, number or boolean'}, got {v!r}", node)
    return v


def _bad(reader: Reader, path: str, message: str, node: Node) -> object:
    reader.problem(path, message, node.line)
    return _BAD


def leaves(c: Condition) -> list[Leaf]:
    if isinstance(c, Combine):
        return [leaf for child in c.children for leaf in leaves(child)]
    return [c]


def uses_context(c: Condition) -> bool:
    return any(isinstance(leaf, FieldTest) and leaf.source == "context" for leaf in leaves(c))


def segment_refs(c: Condition) -> set[str]:
    return {leaf.segment for leaf in leaves(c) if isinstance(leaf, InSegment)}


# --------------------------------------------------------------------------------------------- evaluate


def lookup(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    v: Any = data
    for key in path:
        if not isinstance(v, Mapping):
            return None
        v = v.get(key)
    return v


def _number(v: Any) -> float | None:
    return None if isinstance(v, bool) or not isinstance(v, int | float) else float(v)


def _ordered(op: Op, a: float, b: float) -> bool:
    return a > b if op == "gt" else a >= b if op == "gte" else a < b if op == "lt" else a <= b


def check_value(op: Op, value: Any, operand: Any) -> bool:
    if op == "exists":
        return (value is not None) is bool(operand)
    if value is None:
        return op in ("ne", "not_in")
    if op == "eq":
        return bool(value == operand)
    if op == "ne":
        return bool(value != operand)
    if op == "in":
        return bool(value in operand)
    if op == "not_in":
        return bool(value not in operand)
    if op == "contains":
        return isinstance(value, list) and operand in value
    a = _number(value)
    return a is not None and _ordered(op, a, operand)


def days_between(iso: Any, now: float) -> float | None:
    if not isinstance(iso, str):
        return None
    try:
        d = dt.datetime.fromisoformat(iso)
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    return (now - d.timestamp()) / 86400.0


def evaluate_leaf(leaf: Leaf, facts: Facts) -> bool:
    if isinstance(leaf, InSegment):
        return leaf.segment in facts.segments
    if isinstance(leaf, FieldTest):
        source = facts.profile if leaf.source == "profile" else facts.context
        return check_value(leaf.op, lookup(source, leaf.path), leaf.operand)
    days = days_between(lookup(facts.profile, leaf.path), facts.now)
    return days is not None and _ordered(leaf.op, days, leaf.operand)


def evaluate(c: Condition, facts: Facts) -> bool:
    if isinstance(c, Combine):
        if c.op == "all":
            return all(evaluate(ch, facts) for ch in c.children)
        if c.op == "any":
            return any(evaluate(ch, facts) for ch in c.children)
        return not any(evaluate(ch, facts) for ch in c.children)
    return evaluate_leaf(c, facts)


def first_failure(c: Condition, facts: Facts, path: str = "") -> str | None:
    """The first sub-condition that makes `c` false, as text for explanations; None when `c` holds."""
    if isinstance(c, Combine):
        if c.merged:
            for ch in c.children:  # each child is the list under one key of the same mapping
                why = first_failure(ch, facts, path)
                if why is not None:
                    return why
            return None
        if c.op == "all":
            for i, ch in enumerate(c.children):
                why = first_failure(ch, facts, f"{path}.all[{i}]")
                if why is not None:
                    return why
            return None
        if c.op == "any":
            return None if evaluate(c, facts) else f"{path}.any: none of {len(c.children)} alternatives holds"
        for i, ch in enumerate(c.children):
            if evaluate(ch, facts):
                return f"{path}.none[{i}]: {describe(ch)} holds"
        return None
    return None if evaluate_leaf(c, facts) else f"{path}: {describe(c)} does not hold"


def describe(c: Condition) -> str:
    if isinstance(c, InSegment):
        return f"in_segment {c.segment}"
    if isinstance(c, FieldTest):
        return c.describe()
    if isinstance(c, DaysSince):
        return f"days_since {'.'.join(c.path)} {c.op} {c.operand:g}"
    return f"{c.op}({', '.join(describe(ch) for ch in c.children)})"
