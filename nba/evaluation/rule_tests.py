"""Marketers' rule tests: cases in rules/tests/*.yaml run through the real decision pipeline.

    cases:
      - name: mobile customer with consent is offered broadband
        channel: web
        profile: {products: [mobile], consents: {crosssell: true}, monthly_spend: 40}
        context: {device: mobile}                           # optional
        history:                                            # optional, newest first or any order
          - {type: impression, action: tv-addon, ago: 2d}   # channel defaults to the case's
        now: 2026-11-23T12:00:00Z    # optional; a top-level `now:` sets it for the file; default: the clock
        limit: 3                                            # optional, default: the channel's
        expect:
          first: broadband-bundle
          includes: [broadband-bundle]
          excludes: [tv-addon]
          empty: false

The model is neutral (posterior means from the priors, no exploration), so a case checks what the rules
imply, not what the model happens to have learned.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nba.decision import segments
from nba.decision.rank import How, rank
from nba.domain import EVENT_TYPES, DecideRequest
from nba.errors import RuleProblem
from nba.learning.snapshot import build_snapshot
from nba.rules import profile as profile_rules
from nba.rules.files import Node, Reader, load_yaml, plain, suggest
from nba.rules.rulebook import Rulebook
from nba.store.contract import CustomerSnapshot
from nba.store.history import pack

_CASE_KEYS = ["name", "channel", "profile", "context", "history", "now", "limit", "expect"]
_EXPECT_KEYS = ["first", "includes", "excludes", "empty"]


@dataclass(frozen=True)
class Case:
    file: str
    line: int
    name: str
    channel: str
    profile: dict[str, Any]
    context: dict[str, Any]
    history: list[tuple[float, str, str, str]]  # (seconds ago, type, action, channel)
    now: float | None
    limit: int
    first: str | None
    includes: tuple[str, ...]
    excludes: tuple[str, ...]
    empty: bool | None


@dataclass
class Outcome:
    case: Case
    ranked: list[str]
    failures: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        where = f"{self.case.file}:{self.case.line}: {self.case.name}"
        if not self.failures:
            return f"ok    {where}"
        return "\n".join(
            [
                f"FAIL  {where}",
                *(f"      {f}" for f in self.failures),
                f"      got: {', '.join(self.ranked) or '(nothing)'}",
            ]
        )


def load_cases(rb: Rulebook, directory: Path) -> tuple[list[Case], list[RuleProblem]]:
    problems: list[RuleProblem] = []
    cases: list[Case] = []
    for path in sorted((directory / "tests").glob("*.yaml")):
        name = path.relative_to(directory).as_posix()
        reader = Reader(name, problems)
        root = load_yaml(path, name, problems)
        if root is None:
            continue
        top = reader.mapping(root, "", allowed=["now", "cases"], required=["cases"])
        file_now = reader.date(top["now"], "now") if top and "now" in top else None
        for i, node in enumerate(reader.sequence(top["cases"], "cases") or [] if top and "cases" in top else []):
            case = _case(rb, reader, node, f"cases[{i}]", file_now.timestamp() if file_now else None)
            if case is not None:
                cases.append(case)
    return cases, problems


def _case(rb: Rulebook, r: Reader, node: Node, p: str, file_now: float | None) -> Case | None:
    m = r.mapping(node, p, allowed=_CASE_KEYS, required=["name", "channel", "expect"])
    if m is None or not all(k in m for k in ("name", "channel", "expect")):
        return None
    before = len(r.problems)
    name = r.text(m["name"], f"{p}.name") or ""
    channel = r.text(m["channel"], f"{p}.channel") or ""
    if channel not in rb.channels:
        r.problem(f"{p}.channel", f"unknown channel {channel!r}" + suggest(channel, rb.channels), m["channel"].line)
    attrs = plain(m["profile"]) if "profile" in m else {}
    if not isinstance(attrs, dict):
        r.problem(f"{p}.profile", "must be a mapping of attributes", m["profile"].line)
        attrs = {}
    for err in profile_rules.check_attributes(rb, attrs, prefix=f"{p}.profile"):
        r.problem(err.field, err.message, m["profile"].line)
    context = plain(m["context"]) if "context" in m else {}
    history: list[tuple[float, str, str, str]] = []
    for j, h in enumerate(r.sequence(m["history"], f"{p}.history") or [] if "history" in m else []):
        hp = f"{p}.history[{j}]"
        hm = r.mapping(h, hp, allowed=["type", "action", "ago", "channel"], required=["type", "action", "ago"])
        if hm is None or not all(k in hm for k in ("type", "action", "ago")):
            continue
        etype = r.text(hm["type"], f"{hp}.type")
        if etype not in EVENT_TYPES:
            r.problem(f"{hp}.type", f"unknown event type {etype!r}" + suggest(str(etype), EVENT_TYPES), h.line)
        action = _action_id(rb, r, hm["action"], f"{hp}.action")
        ago = r.duration(hm["ago"], f"{hp}.ago")
        ch = r.text(hm["channel"], f"{hp}.channel") if "channel" in hm else channel
        if etype and action and ago is not None and ch:
            history.append((ago, etype, action, ch))
    now = file_now
    if "now" in m:
        when = r.date(m["now"], f"{p}.now")
        now = when.timestamp() if when else None
    limit = rb.channels[channel].default_limit if channel in rb.channels else 1
    if "limit" in m:
        limit = r.integer(m["limit"], f"{p}.limit", min_value=1) or limit
    em = r.mapping(m["expect"], f"{p}.expect", allowed=_EXPECT_KEYS) or {}
    first = _action_id(rb, r, em["first"], f"{p}.expect.first") if "first" in em else None
    lists = {}
    for key in ("includes", "excludes"):
        items = r.sequence(em[key], f"{p}.expect.{key}") or [] if key in em else []
        lists[key] = tuple(a for j, n in enumerate(items) if (a := _action_id(rb, r, n, f"{p}.expect.{key}[{j}]")))
    empty = r.boolean(em["empty"], f"{p}.expect.empty") if "empty" in em else None
    if not em:
        r.problem(f"{p}.expect", "expects nothing: give first, includes, excludes or empty", m["expect"].line)
    if len(r.problems) > before:
        return None
    return Case(
        r.file,
        node.line,
        name,
        channel,
        attrs,
        context,
        history,
        now,
        limit,
        first,
        lists["includes"],
        lists["excludes"],
        empty,
    )


def _action_id(rb: Rulebook, r: Reader, node: Node, path: str) -> str | None:
    a = r.text(node, path)
    if a is not None and a not in rb.action_index:
        r.problem(path, f"unknown action {a!r}" + suggest(a, rb.action_index), node.line)
        return None
    return a


def run_case(rb: Rulebook, case: Case, now: float) -> Outcome:
    now = case.now if case.now is not None else now
    snap = build_snapshot(rb, None)
    history = pack(
        (int((now - ago) * 1000), etype, action, ch, f"t{i}") for i, (ago, etype, action, ch) in enumerate(case.history)
    )
    customer = CustomerSnapshot(case.profile, segments.materialise(rb, case.profile, now), rb.segments_version, history)
    req = DecideRequest("rule-test", case.channel, case.context, case.limit, True, None)
    ranked = rank(snap, customer, req, now, "test", How(np.random.default_rng(0), explore=False))
    ids = [a.action_id for a in ranked.decision.actions]
    why = {e["action_id"]: f"{e['stage']}: {e.get('reason', '')}" for e in ranked.decision.explain or []}
    out = Outcome(case, ids)
    if case.first is not None and (not ids or ids[0] != case.first):
        out.failures.append(f"expected {case.first} first ({why.get(case.first, '')})")
    for a in case.includes:
        if a not in ids:
            out.failures.append(f"expected {a} in the result ({why.get(a, '')})")
    for a in case.excludes:
        if a in ids:
            out.failures.append(f"expected {a} not in the result, it is at rank {ids.index(a) + 1}")
    if case.empty is not None and (not ids) != case.empty:
        out.failures.append("expected an empty result" if case.empty else "expected some action")
    return out


def run_all(rb: Rulebook, directory: Path, now: float | None = None) -> tuple[list[Outcome], list[RuleProblem]]:
    cases, problems = load_cases(rb, directory)
    clock = now if now is not None else dt.datetime.now(dt.UTC).timestamp()
    return [run_case(rb, c, clock) for c in cases], problems


def uncovered(rb: Rulebook, outcomes: list[Outcome]) -> list[str]:
    """Actions no case names (a marketer's coverage report)."""
    named = {a for o in outcomes for a in (o.case.first, *o.case.includes, *o.case.excludes) if a}
    return [a.id for a in rb.actions if a.id not in named]
