"""Load and validate `rules/` into one immutable Rulebook, with numpy arrays over all actions.

Layout: channels.yaml, profile.yaml (attribute types), segments.yaml, policy.yaml, actions/*.yaml (one
action per file). Every problem of the whole set is collected and raised together as RulesInvalid, so
a marketer fixes a rule set in one round, and an invalid set never replaces a running one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from nba.domain import EVENT_CODE, EVENT_TYPES, BoolArray, FloatArray, IntArray
from nba.errors import RuleProblem, RulesInvalid
from nba.rules.caps import ACTION, CHANNEL, GROUP, TOTAL, CapRow, CapTable
from nba.rules.conditions import (
    ALWAYS,
    ATTRIBUTE_TYPES,
    AttributeType,
    Combine,
    Condition,
    FieldTest,
    Vocabulary,
    compile_condition,
    leaves,
    segment_refs,
    uses_context,
)
from nba.rules.conditions import DaysSince as _DaysSince
from nba.rules.files import Node, Reader, load_yaml, plain, suggest
from nba.rules.learning_settings import Learning, parse_learning
from nba.rules.program import Program, compile_program
from nba.rules.reasons import Template, compile_reason

FOREVER = 4102444800.0  # 2100-01-01, "no end date"
MAX_ACTIONS = 10_000
SegmentKind = Literal["profile", "dynamic", "context"]
_KIND_ORDER: tuple[SegmentKind, ...] = ("profile", "dynamic", "context")


@dataclass(frozen=True)
class QuietHours:
    """Local times between which an outbound channel sends nothing (may wrap past midnight)."""

    start_minute: int
    end_minute: int
    timezone: str

    def covers(self, now: float) -> bool:
        local = dt.datetime.fromtimestamp(now, ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        if self.start_minute <= self.end_minute:
            return self.start_minute <= minute < self.end_minute
        return minute >= self.start_minute or minute < self.end_minute


@dataclass(frozen=True)
class Channel:
    name: str
    direction: Literal["inbound", "outbound"]
    default_limit: int
    max_limit: int
    consent: str | None  # a flag in the `consents` attribute that must be true for this channel
    quiet_hours: QuietHours | None = None


# One layer of an action's rules: (stage, "file: key", condition). Stages, in order: eligibility (who
# may get it), applicability (does it fit this contact), suitability (is it good for this customer),
# consent (the customer agreed to its purpose).
Layer = tuple[str, str, Condition]
LAYER_KEYS = {"eligible_when": "eligibility", "applicable_when": "applicability",
              "suitable_when": "suitability"}


@dataclass(frozen=True)
class Segment:
    name: str
    condition: Condition
    kind: SegmentKind  # profile: materialised on profile writes; dynamic (time) and context: per request
    description: str


@dataclass(frozen=True)
class Action:
    id: str
    name: str
    group: str
    kind: Literal["offer", "no_action"]
    channels: tuple[str, ...]
    value: float
    weight: float
    active_from: float
    active_until: float
    condition: Condition  # all layers and-ed: what the vectorised eligibility program evaluates
    layers: tuple[Layer, ...]
    purpose: str | None
    content: dict[str, Any]
    reason: str
    reason_template: Template
    mandatory: bool
    prior: tuple[float, float]
    file: str


@dataclass(frozen=True)
class ContactLimit:
    """At most `max_actions` actions over all decisions that share a contact_id within `within` s."""

    max_actions: int
    within: float


@dataclass(frozen=True)
class Rulebook:
    version: str
    segments_version: str  # changes only with profile.yaml / segments.yaml: materialised segments stay valid
    channels: Mapping[str, Channel]
    attributes: Mapping[str, AttributeType]
    list_values: Mapping[str, tuple[str, ...]]
    segments: tuple[Segment, ...]  # in dependency order
    actions: tuple[Action, ...]
    groups: tuple[str, ...]
    group_weights: Mapping[str, float]
    learning: Learning
    contact: ContactLimit | None
    caps: CapTable
    program: Program
    # arrays over actions (rulebook order)
    group_of: IntArray
    value: FloatArray
    weight: FloatArray  # action weight x group weight
    lever: FloatArray  # value x weight
    active_from: FloatArray
    active_until: FloatArray
    channel_ok: BoolArray  # (actions, channels)
    no_action: BoolArray
    mandatory: BoolArray
    prior_alpha: FloatArray
    prior_beta: FloatArray
    files: tuple[str, ...] = ()
    action_index: Mapping[str, int] = field(default_factory=dict)
    channel_index: Mapping[str, int] = field(default_factory=dict)
    segment_index: Mapping[str, int] = field(default_factory=dict)

    @cached_property
    def action_ids(self) -> npt.NDArray[np.object_]:
        """Action ids in rulebook order, to turn index arrays into ids without a Python loop."""
        return np.array([a.id for a in self.actions], dtype=object)

    @property
    def segment_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.segments)


# ------------------------------------------------------------------------------------------------ load


def rules_files(directory: Path) -> list[Path]:
    """Every file that makes up a rule set (rule tests under tests/ do not change decisions)."""
    return sorted(p for p in directory.rglob("*.yaml") if "tests" not in p.relative_to(directory).parts[:1])


def content_hash(directory: Path, files: list[Path], only: tuple[str, ...] | None = None) -> str:
    h = hashlib.sha256()
    for p in files:
        rel = p.relative_to(directory).as_posix()
        if only is not None and rel not in only:
            continue
        h.update(rel.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def load_rulebook(directory: Path) -> Rulebook:
    directory = Path(directory)
    problems: list[RuleProblem] = []
    if not directory.is_dir():
        raise RulesInvalid([RuleProblem(str(directory), "", "rules directory does not exist")])
    files = rules_files(directory)

    def read(name: str) -> tuple[Reader, Node | None]:
        path = directory / name
        reader = Reader(name, problems)
        if not path.exists():
            reader.problem("", "file is missing", None)
            return reader, None
        return reader, load_yaml(path, name, problems)

    channels = _channels(*read("channels.yaml"))
    attributes, list_values = _attributes(*read("profile.yaml"))
    segments, seg_names = _segments(*read("segments.yaml"), attributes)
    groups, group_layers, learning, contact, cap_nodes = _policy(*read("policy.yaml"), seg_names, attributes,
                                                                 list_values, tuple(channels))
    cap_rows: list[CapRow] = []
    policy_reader = Reader("policy.yaml", problems)
    for cap_path, cap_node in cap_nodes:
        cap_rows.extend(_limit(policy_reader, cap_node, cap_path, None, tuple(groups), tuple(channels)))
    actions: list[Action] = []
    seen: dict[str, str] = {}
    action_files = sorted((directory / "actions").glob("*.yaml")) if (directory / "actions").is_dir() else []
    if not action_files:
        problems.append(RuleProblem("actions/", "", "no action files (actions/*.yaml)"))
    for path in action_files:
        name = path.relative_to(directory).as_posix()
        reader = Reader(name, problems)
        node = load_yaml(path, name, problems)
        if node is None:
            continue
        parsed = _action(reader, node, channels, attributes, seg_names, groups, group_layers, learning.prior)
        if parsed is None:
            continue
        action, limits = parsed
        if action.id in seen:
            reader.problem("id", f"duplicate action id {action.id!r}, also in {seen[action.id]}", node.lines.get("id"))
            continue
        if path.stem != action.id:
            reader.problem("id", f"id {action.id!r} differs from the file name {path.stem!r}", node.lines.get("id"))
        seen[action.id] = name
        cap_rows.extend(row._replace(target=len(actions)) for row in limits)
        actions.append(action)
    if len(actions) > MAX_ACTIONS:
        problems.append(RuleProblem("actions/", "", f"{len(actions)} actions, at most {MAX_ACTIONS}"))
    action_index = {a.id: i for i, a in enumerate(actions)}
    caps = CapTable.build(cap_rows)
    if problems:
        raise RulesInvalid(problems)
    return _assemble(directory, files, channels, attributes, list_values, segments, actions, groups,
                     learning, contact, caps, action_index)


def _assemble(directory: Path, files: list[Path], channels: dict[str, Channel],
              attributes: dict[str, AttributeType], list_values: dict[str, tuple[str, ...]],
              segments: list[Segment], actions: list[Action], groups: dict[str, float], learning: Learning,
              contact: ContactLimit | None, caps: CapTable, action_index: dict[str, int]) -> Rulebook:
    group_names = tuple(groups)
    channel_names = tuple(channels)
    n = len(actions)
    group_of = np.array([group_names.index(a.group) for a in actions], np.int64)
    value = np.array([a.value for a in actions], np.float64)
    weight = np.array([a.weight * groups[a.group] for a in actions], np.float64)
    channel_ok = np.zeros((n, len(channel_names)), bool)
    for i, a in enumerate(actions):
        for ch in a.channels:
            channel_ok[i, channel_names.index(ch)] = True
    segment_names = [s.name for s in segments]
    return Rulebook(
        version=content_hash(directory, files),
        segments_version=content_hash(directory, files, ("profile.yaml", "segments.yaml")),
        channels=channels, attributes=attributes, list_values=list_values, segments=tuple(segments),
        actions=tuple(actions), groups=group_names, group_weights=dict(groups), learning=learning,
        contact=contact, caps=caps,
        program=compile_program([a.condition for a in actions], segment_names),
        group_of=group_of, value=value, weight=weight, lever=value * weight,
        active_from=np.array([a.active_from for a in actions]),
        active_until=np.array([a.active_until for a in actions]),
        channel_ok=channel_ok,
        no_action=np.array([a.kind == "no_action" for a in actions], bool),
        mandatory=np.array([a.mandatory for a in actions], bool),
        prior_alpha=np.array([a.prior[0] for a in actions]), prior_beta=np.array([a.prior[1] for a in actions]),
        files=tuple(p.relative_to(directory).as_posix() for p in files),
        action_index=action_index,
        channel_index={c: i for i, c in enumerate(channel_names)},
        segment_index={s: i for i, s in enumerate(segment_names)},
    )


# ------------------------------------------------------------------------------------------ sections


def _channels(r: Reader, root: Node | None) -> dict[str, Channel]:
    out: dict[str, Channel] = {}
    top = r.mapping(root, "", allowed=["channels"], required=["channels"]) if root else None
    chans = r.mapping(top["channels"], "channels") if top and "channels" in top else None
    for name, node in (chans or {}).items():
        p = f"channels.{name}"
        if r.ident(Node(name, node.line), p) is None:
            continue
        m = r.mapping(node, p, allowed=["direction", "default_limit", "max_limit", "consent", "quiet_hours"],
                      required=["direction"])
        if m is None:
            continue
        direction = r.text(m["direction"], f"{p}.direction") if "direction" in m else None
        if direction not in (None, "inbound", "outbound"):
            r.problem(f"{p}.direction", f"must be inbound or outbound, got {direction!r}", m["direction"].line)
            continue
        default = r.integer(m["default_limit"], f"{p}.default_limit", min_value=1) if "default_limit" in m else 3
        maximum = r.integer(m["max_limit"], f"{p}.max_limit", min_value=1) if "max_limit" in m else 10
        consent = r.ident(m["consent"], f"{p}.consent") if "consent" in m else None
        if direction is None or default is None or maximum is None:
            continue
        if default > maximum:
            r.problem(f"{p}.default_limit", f"{default} is above max_limit {maximum}", m["default_limit"].line)
            continue
        if maximum > 50:
            r.problem(f"{p}.max_limit", "at most 50", m["max_limit"].line)
            continue
        quiet = _quiet_hours(r, m["quiet_hours"], f"{p}.quiet_hours") if "quiet_hours" in m else None
        out[name] = Channel(name, direction, default, maximum, consent, quiet)  # type: ignore[arg-type]
    if top is not None and not out and not r.problems:
        r.problem("channels", "declares no channel", root.line if root else None)
    return out


def _quiet_hours(r: Reader, node: Node, path: str) -> QuietHours | None:
    m = r.mapping(node, path, allowed=["from", "until", "timezone"], required=["from", "until", "timezone"])
    if m is None or not all(k in m for k in ("from", "until", "timezone")):
        return None
    minutes = []
    for key in ("from", "until"):
        v = m[key].value
        if isinstance(v, int) and not isinstance(v, bool):  # YAML 1.1 reads 21:00 as sexagesimal 1260
            v = f"{v // 60:02d}:{v % 60:02d}"
        parts = v.split(":") if isinstance(v, str) else []
        if len(parts) != 2 or not all(x.isdigit() for x in parts) or int(parts[0]) > 23 or int(parts[1]) > 59:
            r.problem(f"{path}.{key}", f"must be a time like \"21:00\", got {m[key].value!r}", m[key].line)
            return None
        minutes.append(int(parts[0]) * 60 + int(parts[1]))
    tz = r.text(m["timezone"], f"{path}.timezone")
    if tz is None:
        return None
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        r.problem(f"{path}.timezone", f"unknown time zone {tz!r}, e.g. Europe/Amsterdam", m["timezone"].line)
        return None
    if minutes[0] == minutes[1]:
        r.problem(f"{path}.until", "equals from: the quiet hours would be empty", m["until"].line)
        return None
    return QuietHours(minutes[0], minutes[1], tz)


def _attributes(r: Reader, root: Node | None) -> tuple[dict[str, AttributeType], dict[str, tuple[str, ...]]]:
    types: dict[str, AttributeType] = {}
    values: dict[str, tuple[str, ...]] = {}
    top = r.mapping(root, "", allowed=["attributes"], required=["attributes"]) if root else None
    attrs = r.mapping(top["attributes"], "attributes") if top and "attributes" in top else None
    for name, node in (attrs or {}).items():
        p = f"attributes.{name}"
        if r.ident(Node(name, node.line), p) is None:
            continue
        m = r.mapping(node, p, allowed=["type", "values", "description"], required=["type"])
        if m is None or "type" not in m:
            continue
        t = r.text(m["type"], f"{p}.type")
        if t not in ATTRIBUTE_TYPES:
            r.problem(f"{p}.type", f"unknown type {t!r}; one of {', '.join(ATTRIBUTE_TYPES)}"
                      + suggest(str(t), ATTRIBUTE_TYPES), m["type"].line)
            continue
        types[name] = t
        if "values" in m:
            items = r.sequence(m["values"], f"{p}.values")
            if t != "list":
                r.problem(f"{p}.values", "only list attributes take values", m["values"].line)
            elif items is not None:
                texts = [r.text(n, f"{p}.values[{i}]") for i, n in enumerate(items)]
                values[name] = tuple(x for x in texts if x is not None)
    return types, values


def _segments(r: Reader, root: Node | None,
              attributes: dict[str, AttributeType]) -> tuple[list[Segment], frozenset[str]]:
    """The valid segments in dependency order, and every declared name (so one broken segment is
    reported once, not again in every action that uses it)."""
    top = r.mapping(root, "", allowed=["segments"], required=["segments"]) if root else None
    segs = r.mapping(top["segments"], "segments") if top and "segments" in top else None
    if not segs:
        return [], frozenset()
    names = frozenset(segs)
    vocab = Vocabulary(attributes, names)
    raw: dict[str, tuple[Condition, str]] = {}
    for name, node in segs.items():
        p = f"segments.{name}"
        if r.ident(Node(name, node.line), p) is None:
            continue
        m = r.mapping(node, p, allowed=["when", "description"], required=["when"])
        if m is None or "when" not in m:
            continue
        cond = compile_condition(m["when"], f"{p}.when", r, vocab)
        desc = r.text(m["description"], f"{p}.description") if "description" in m else ""
        if cond is not None:
            raw[name] = (cond, desc or "")
    # order by dependencies and derive each segment's kind from what it (transitively) looks at
    ordered: list[Segment] = []
    done: dict[str, SegmentKind | None] = {}
    visiting: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> SegmentKind | None:
        if name in done:
            return done[name]
        if name in visiting:
            r.problem(f"segments.{trail[0]}", "refers to itself through " + " -> ".join((*trail, name)),
                      segs[trail[0]].line)
            return None
        if name not in raw:
            return None
        visiting.add(name)
        cond, desc = raw[name]
        kind: SegmentKind | None = "profile"
        if any(isinstance(leaf, _DaysSince) for leaf in leaves(cond)):
            kind = "dynamic"
        if uses_context(cond):
            kind = "context"
        for dep in sorted(segment_refs(cond)):
            dep_kind = visit(dep, (*trail, name))
            kind = None if dep_kind is None or kind is None else max(kind, dep_kind, key=_KIND_ORDER.index)
        visiting.discard(name)
        done[name] = kind
        if kind is not None:
            ordered.append(Segment(name, cond, kind, desc))
        return kind

    for name in raw:
        visit(name, ())
    return ordered, names


def _policy(r: Reader, root: Node | None, segments: frozenset[str], attributes: Mapping[str, AttributeType],
            list_values: Mapping[str, tuple[str, ...]], channels: tuple[str, ...]
            ) -> tuple[dict[str, float], dict[str, list[Layer]], Learning, ContactLimit | None, list[tuple[str, Node]]]:
    groups: dict[str, float] = {}
    group_layers: dict[str, list[Layer]] = {}
    default_learning = Learning()
    top = r.mapping(root, "", allowed=["groups", "learning", "caps", "contact"], required=["groups", "learning"]) \
        if root else None
    if not top:
        return groups, group_layers, default_learning, None, []
    for name, node in (r.mapping(top["groups"], "groups") or {} if "groups" in top else {}).items():
        p = f"groups.{name}"
        if r.ident(Node(name, node.line), p) is None:
            continue
        m = r.mapping(node, p, allowed=["weight", "description", *LAYER_KEYS])
        if m is None:
            continue
        w = r.number(m["weight"], f"{p}.weight", min_value=0, max_value=1000) if "weight" in m else 1.0
        if w is not None:
            groups[name] = w
        group_layers[name] = _layers(r, m, p, attributes, segments)
    learning = default_learning
    if "learning" in top:
        prior = _prior(r, top["learning"].value["prior"], "learning.prior") \
            if isinstance(top["learning"].value, dict) and "prior" in top["learning"].value else None
        learning = parse_learning(r, top["learning"], segments, attributes, list_values, channels, prior)
    caps = [(f"caps[{i}]", n) for i, n in enumerate(r.sequence(top["caps"], "caps") or [])] if "caps" in top else []
    contact = None
    if "contact" in top:
        cm = r.mapping(top["contact"], "contact", allowed=["max_actions", "within"], required=["max_actions", "within"])
        if cm and "max_actions" in cm and "within" in cm:
            most = r.integer(cm["max_actions"], "contact.max_actions", min_value=1)
            within = r.duration(cm["within"], "contact.within")
            if most is not None and within is not None:
                contact = ContactLimit(most, within)
    return groups, group_layers, learning, contact, caps


def _layers(r: Reader, m: Mapping[str, Node], path: str, attributes: Mapping[str, AttributeType],
            segments: frozenset[str]) -> list[Layer]:
    out: list[Layer] = []
    vocab = Vocabulary(attributes, segments)
    for key, stage in LAYER_KEYS.items():
        if key in m:
            where = f"{path}.{key}" if path else key
            cond = compile_condition(m[key], where, r, vocab)
            if cond is not None:
                out.append((stage, f"{r.file}: {where}", cond))
    return out


def _prior(r: Reader, node: Node, path: str) -> tuple[float, float] | None:
    m = r.mapping(node, path, allowed=["alpha", "beta"], required=["alpha", "beta"])
    if m is None or "alpha" not in m or "beta" not in m:
        return None
    a = r.number(m["alpha"], f"{path}.alpha", min_value=0.01, max_value=1e6)
    b = r.number(m["beta"], f"{path}.beta", min_value=0.01, max_value=1e6)
    return None if a is None or b is None else (a, b)


_ACTION_KEYS = ["id", "name", "group", "kind", "channels", "value", "weight", "active", *LAYER_KEYS, "purpose",
                "limits", "content", "reason", "mandatory", "prior", "description"]


def _action(r: Reader, node: Node, channels: Mapping[str, Channel], attributes: Mapping[str, AttributeType],
            segments: frozenset[str], groups: Mapping[str, float], group_layers: Mapping[str, list[Layer]],
            default_prior: tuple[float, float]) -> tuple[Action, list[CapRow]] | None:
    m = r.mapping(node, "", allowed=_ACTION_KEYS, required=["id", "group", "channels", "value"])
    if m is None or not all(k in m for k in ("id", "group", "channels", "value")):
        return None
    before = len(r.problems)
    aid = r.ident(m["id"], "id")
    name = r.text(m["name"], "name", max_len=200) if "name" in m else aid
    group = r.ident(m["group"], "group")
    if group is not None and group not in groups:
        r.problem("group", f"unknown group {group!r}" + suggest(group, groups) + " (groups are in policy.yaml)",
                  m["group"].line)
    kind = r.text(m["kind"], "kind") if "kind" in m else "offer"
    if kind not in ("offer", "no_action"):
        r.problem("kind", f"must be offer or no_action, got {kind!r}", m["kind"].line)
    chans: list[str] = []
    for i, n in enumerate(r.sequence(m["channels"], "channels") or []):
        c = r.text(n, f"channels[{i}]")
        if c is not None and c not in channels:
            r.problem(f"channels[{i}]", f"unknown channel {c!r}" + suggest(c, channels), n.line)
        elif c is not None:
            chans.append(c)
    if not chans and len(r.problems) == before:
        r.problem("channels", "must name at least one channel", m["channels"].line)
    value = r.number(m["value"], "value", min_value=0, max_value=1e9)
    weight = r.number(m["weight"], "weight", min_value=0, max_value=1000) if "weight" in m else 1.0
    active_from, active_until = 0.0, FOREVER
    if "active" in m:
        am = r.mapping(m["active"], "active", allowed=["from", "until"])
        if am:
            f = r.date(am["from"], "active.from") if "from" in am else None
            u = r.date(am["until"], "active.until") if "until" in am else None
            active_from = f.timestamp() if f else 0.0
            # `until: 2027-01-31` means through that whole day
            active_until = (u + dt.timedelta(days=1)).timestamp() if u and _is_date(am["until"]) else \
                u.timestamp() if u else FOREVER
            if active_until <= active_from:
                r.problem("active.until", "is before active.from", am["until"].line if "until" in am else None)
    own = _layers(r, m, "", attributes, segments)
    purpose = r.ident(m["purpose"], "purpose") if "purpose" in m else None
    layers = [*group_layers.get(group or "", []), *own]
    if purpose is not None:
        if attributes.get("consents") != "flags":
            r.problem("purpose", "needs a flags attribute named consents in profile.yaml", m["purpose"].line)
        layers.append(("consent", f"{r.file}: purpose",
                       FieldTest("profile", ("consents", purpose), "eq", True)))
    order = ("eligibility", "applicability", "suitability", "consent")
    layers.sort(key=lambda layer: order.index(layer[0]))
    conds = [c for _, _, c in layers]
    cond: Condition | None = ALWAYS if not conds else conds[0] if len(conds) == 1 else Combine("all", tuple(conds))
    content = plain(m["content"]) if "content" in m else {}
    if not isinstance(content, dict):
        r.problem("content", "must be a mapping", m["content"].line)
    reason = r.text(m["reason"], "reason", max_len=500) if "reason" in m else ""
    template = compile_reason(reason, attributes, r, "reason", m["reason"].line) if reason else ()
    mandatory = r.boolean(m["mandatory"], "mandatory") if "mandatory" in m else False
    prior = _prior(r, m["prior"], "prior") if "prior" in m else default_prior
    # target -1: the action's index is known once the whole set is read
    limits = [row for i, n in enumerate(r.sequence(m["limits"], "limits") or [] if "limits" in m else [])
              for row in _limit(r, n, f"limits[{i}]", -1, tuple(groups), tuple(channels))]
    if len(r.problems) > before or None in (aid, name, group, value, weight, cond, reason, mandatory, prior):
        return None
    return Action(
        id=aid, name=name or aid, group=group, kind=kind, channels=tuple(chans), value=value,  # type: ignore[arg-type]
        weight=weight, active_from=active_from, active_until=active_until, condition=cond,  # type: ignore[arg-type]
        layers=tuple(layers), purpose=purpose,
        content=content, reason=reason or "", reason_template=template or (), mandatory=bool(mandatory),
        prior=prior, file=r.file,  # type: ignore[arg-type]
    ), limits


def _is_date(node: Node) -> bool:
    return (isinstance(node.value, dt.date) and not isinstance(node.value, dt.datetime)) or (
        isinstance(node.value, str) and len(node.value) == 10)


def _limit(r: Reader, node: Node, path: str, action: int | None, groups: tuple[str, ...],
           channels: tuple[str, ...]) -> list[CapRow]:
    scope_keys = ["group", "channel"] if action is None else []
    m = r.mapping(node, path, allowed=["count", "max", "per", "after", "times", "suppress_for", *scope_keys])
    if m is None:
        return []
    if ("count" in m) == ("after" in m):
        r.problem(path, "needs either {count, max, per} or {after, suppress_for}", node.line)
        return []
    if "count" in m:
        for k in ("max", "per"):
            if k not in m:
                r.problem(f"{path}.{k}", "is required with count", node.line)
        event_node, max_node, window_node = m["count"], m.get("max"), m.get("per")
    else:
        if "suppress_for" not in m:
            r.problem(f"{path}.suppress_for", "is required with after", node.line)
        event_node, max_node, window_node = m["after"], m.get("times"), m.get("suppress_for")
    event = r.text(event_node, f"{path}.{'count' if 'count' in m else 'after'}")
    if event is not None and event not in EVENT_CODE:
        r.problem(path, f"unknown event type {event!r}" + suggest(event, EVENT_TYPES), event_node.line)
        event = None
    maximum = r.integer(max_node, f"{path}.max", min_value=1) if max_node is not None else 1
    window = r.duration(window_node, f"{path}.per") if window_node is not None else None
    scope, target = ACTION, action if action is not None else 0
    if action is None:
        scope = TOTAL
        if "group" in m and "channel" in m:
            r.problem(path, "takes group or channel, not both", node.line)
            return []
        for key, names, sc in (("group", groups, GROUP), ("channel", channels, CHANNEL)):
            if key in m:
                name = r.text(m[key], f"{path}.{key}")
                if name not in names:
                    r.problem(f"{path}.{key}", f"unknown {key} {name!r}" + suggest(str(name), names), m[key].line)
                    return []
                scope, target = sc, names.index(name)
    if event is None or maximum is None or window is None:
        return []
    return [CapRow(scope, target, EVENT_CODE[event], window, maximum, f"{r.file}: {path}")]
