"""Load and validate `rules/` into one Rulebook.

Layout: channels.yaml, profile.yaml (attribute types), segments.yaml, policy.yaml, actions/*.yaml (one
action per file, actions.py). Every problem of the whole set is collected and raised together as
RulesInvalid, so a marketer fixes a rule set in one round, and an invalid set never replaces a running one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nba.errors import RuleProblem, RulesInvalid
from nba.rules.actions import Scope, read_action, read_layers, read_limit, read_prior
from nba.rules.caps import CapRow
from nba.rules.compile import Sections, compile_rulebook
from nba.rules.conditions import (
    ATTRIBUTE_TYPES,
    AttributeType,
    Condition,
    Vocabulary,
    compile_condition,
    leaves,
    segment_refs,
    uses_context,
)
from nba.rules.conditions import DaysSince as _DaysSince
from nba.rules.files import Node, Reader, load_yaml, suggest
from nba.rules.learning_settings import Learning, parse_learning
from nba.rules.rulebook import (
    LAYER_KEYS,
    MAX_ACTIONS,
    Action,
    Capacity,
    Channel,
    ContactLimit,
    Layer,
    QuietHours,
    Rulebook,
    Segment,
    SegmentKind,
)


def rules_files(directory: Path) -> list[Path]:
    """Every file that makes up a rule set (rule tests under tests/ do not change decisions)."""
    return sorted(p for p in directory.rglob("*.yaml") if "tests" not in p.relative_to(directory).parts[:1])


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
    groups, group_layers, learning, contact, cap_nodes = _policy(
        *read("policy.yaml"), seg_names, attributes, list_values, tuple(channels)
    )
    cap_rows: list[CapRow] = []
    policy_reader = Reader("policy.yaml", problems)
    for cap_path, cap_node in cap_nodes:
        cap_rows.extend(read_limit(policy_reader, cap_node, cap_path, None, tuple(groups), tuple(channels)))
    actions: list[Action] = []
    scope = Scope(channels, attributes, seg_names, groups, group_layers, learning.prior)
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
        parsed = read_action(reader, node, scope)
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
    problems.extend(_priced_without_bar(channels, actions) if not problems else [])
    if problems:
        raise RulesInvalid(problems)
    return compile_rulebook(
        directory,
        files,
        Sections(channels, attributes, list_values, segments, actions, groups, learning, contact, cap_rows),
    )


def _priced_without_bar(channels: dict[str, Channel], actions: list[Action]) -> list[RuleProblem]:
    """A real-time capacity price raises the do-nothing bar: a channel without a no_action action has none."""
    return [
        RuleProblem(
            "channels.yaml",
            f"channels.{name}.capacity.real_time",
            "needs a no_action action on the channel (its value is the bar the capacity price raises)",
        )
        for name, channel in channels.items()
        if channel.capacity is not None
        and channel.capacity.real_time
        and not any(a.kind == "no_action" and name in a.channels for a in actions)
    ]


MAX_REMEMBER_ANONYMOUS = 30 * 86400  # what a customer without a profile may leave behind, at most
# a request_id is remembered as long as a page view or a call lasts (the reservation's 30 minutes by
# default); a day at most, since every remembered one keeps its answer in Redis meanwhile
DEFAULT_REQUEST_WINDOW = 1800.0
MAX_REQUEST_WINDOW = 86400
_KIND_ORDER: tuple[SegmentKind, ...] = ("profile", "dynamic", "context")
_DIRECTIONS: dict[str, Literal["inbound", "outbound"]] = {"inbound": "inbound", "outbound": "outbound"}


def _channels(r: Reader, root: Node | None) -> dict[str, Channel]:
    out: dict[str, Channel] = {}
    top = r.mapping(root, "", allowed=["channels"], required=["channels"]) if root else None
    chans = r.optional(top, "channels", r.mapping, None) if top else None
    for name, node in (chans or {}).items():
        p = f"channels.{name}"
        if r.ident(Node(name, node.line), p) is None:
            continue
        m = r.mapping(
            node,
            p,
            allowed=[
                "direction",
                "default_limit",
                "max_limit",
                "consent",
                "quiet_hours",
                "remember_anonymous",
                "capacity",
                "request_window",
            ],
            required=["direction"],
        )
        if m is None:
            continue
        text = r.optional(m, "direction", r.text, None, at=p)
        direction = _DIRECTIONS.get(text or "")
        if text is not None and direction is None:
            r.problem(f"{p}.direction", f"must be inbound or outbound, got {text!r}", m["direction"].line)
            continue
        default = r.optional(m, "default_limit", r.integer, 3, at=p, min_value=1)
        maximum = r.optional(m, "max_limit", r.integer, 10, at=p, min_value=1)
        consent = r.optional(m, "consent", r.ident, None, at=p)
        if direction is None or default is None or maximum is None:
            continue
        if default > maximum:
            r.problem(f"{p}.default_limit", f"{default} is above max_limit {maximum}", m["default_limit"].line)
            continue
        if maximum > 50:
            r.problem(f"{p}.max_limit", "at most 50", m["max_limit"].line)
            continue
        quiet = r.optional(m, "quiet_hours", lambda node, path: _quiet_hours(r, node, path), None, at=p)
        remember = r.optional(m, "remember_anonymous", r.duration, 0.0, at=p)
        if remember is not None and remember > MAX_REMEMBER_ANONYMOUS:
            r.problem(f"{p}.remember_anonymous", "at most 30d", m["remember_anonymous"].line)
            continue
        capacity = r.optional(m, "capacity", lambda node, path: _capacity(r, node, path), None, at=p)
        if "capacity" in m and capacity is None:
            continue
        window = r.optional(m, "request_window", r.duration, DEFAULT_REQUEST_WINDOW, at=p)
        if window is None:
            continue
        if window > MAX_REQUEST_WINDOW:
            r.problem(f"{p}.request_window", "at most 1d", m["request_window"].line)
            continue
        out[name] = Channel(
            name, direction, default, maximum, consent, quiet, int(remember or 0), capacity, int(window)
        )
    if top is not None and not out and not r.problems:
        r.problem("channels", "declares no channel", root.line if root else None)
    return out


MAX_PER_DAY = 1_000_000_000


def _capacity(r: Reader, node: Node, path: str) -> Capacity | None:
    m = r.mapping(node, path, allowed=["per_day", "real_time"], required=["per_day"])
    if m is None or "per_day" not in m:
        return None
    per_day = r.integer(m["per_day"], f"{path}.per_day", min_value=0, max_value=MAX_PER_DAY)
    real_time = r.optional(m, "real_time", r.boolean, False, at=path)
    if per_day is None or real_time is None:
        return None
    return Capacity(per_day, real_time)


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
            r.problem(f"{path}.{key}", f'must be a time like "21:00", got {m[key].value!r}', m[key].line)
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
    attrs = r.optional(top, "attributes", r.mapping, None) if top else None
    for name, node in (attrs or {}).items():
        p = f"attributes.{name}"
        if r.ident(Node(name, node.line), p) is None:
            continue
        m = r.mapping(node, p, allowed=["type", "values", "description"], required=["type"])
        if m is None or "type" not in m:
            continue
        t = r.text(m["type"], f"{p}.type")
        if t not in ATTRIBUTE_TYPES:
            r.problem(
                f"{p}.type",
                f"unknown type {t!r}; one of {', '.join(ATTRIBUTE_TYPES)}" + suggest(str(t), ATTRIBUTE_TYPES),
                m["type"].line,
            )
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


def _segments(
    r: Reader, root: Node | None, attributes: dict[str, AttributeType]
) -> tuple[list[Segment], frozenset[str]]:
    """The valid segments in dependency order, and every declared name (so one broken segment is
    reported once, not again in every action that uses it)."""
    top = r.mapping(root, "", allowed=["segments"], required=["segments"]) if root else None
    segs = r.optional(top, "segments", r.mapping, None) if top else None
    if not segs:
        return [], frozenset()
    names = frozenset(segs)
    vocab = Vocabulary(attributes, names)
    raw: dict[str, tuple[Condition, str, str]] = {}
    for name, node in segs.items():
        p = f"segments.{name}"
        if r.ident(Node(name, node.line), p) is None:
            continue
        m = r.mapping(node, p, allowed=["when", "description", "label"], required=["when"])
        if m is None or "when" not in m:
            continue
        cond = compile_condition(m["when"], f"{p}.when", r, vocab)
        desc = r.optional(m, "description", r.text, "", at=p)
        label = r.optional(m, "label", r.text, "", at=p, max_len=120)
        if cond is not None:
            raw[name] = (cond, desc or "", label or "")
    # order by dependencies and derive each segment's kind from what it (transitively) looks at
    ordered: list[Segment] = []
    done: dict[str, SegmentKind | None] = {}
    visiting: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> SegmentKind | None:
        if name in done:
            return done[name]
        if name in visiting:
            r.problem(
                f"segments.{trail[0]}", "refers to itself through " + " -> ".join((*trail, name)), segs[trail[0]].line
            )
            return None
        if name not in raw:
            return None
        visiting.add(name)
        cond, desc, label = raw[name]
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
            ordered.append(Segment(name, cond, kind, desc, label))
        return kind

    for name in raw:
        visit(name, ())
    return ordered, names


def _policy(
    r: Reader,
    root: Node | None,
    segments: frozenset[str],
    attributes: Mapping[str, AttributeType],
    list_values: Mapping[str, tuple[str, ...]],
    channels: tuple[str, ...],
) -> tuple[dict[str, float], dict[str, list[Layer]], Learning, ContactLimit | None, list[tuple[str, Node]]]:
    groups: dict[str, float] = {}
    group_layers: dict[str, list[Layer]] = {}
    default_learning = Learning()
    top = (
        r.mapping(root, "", allowed=["groups", "learning", "caps", "contact"], required=["groups", "learning"])
        if root
        else None
    )
    if not top:
        return groups, group_layers, default_learning, None, []
    for name, node in (r.optional(top, "groups", r.mapping, None) or {}).items():
        p = f"groups.{name}"
        if r.ident(Node(name, node.line), p) is None:
            continue
        m = r.mapping(node, p, allowed=["weight", "description", *LAYER_KEYS])
        if m is None:
            continue
        w = r.optional(m, "weight", r.number, 1.0, at=p, min_value=0, max_value=1000)
        if w is not None:
            groups[name] = w
        group_layers[name] = read_layers(r, m, p, attributes, segments)
    learning = default_learning
    if "learning" in top:
        prior = (
            read_prior(r, top["learning"].value["prior"], "learning.prior")
            if isinstance(top["learning"].value, dict) and "prior" in top["learning"].value
            else None
        )
        learning = parse_learning(r, top["learning"], segments, attributes, list_values, channels, prior)
    caps = [(f"caps[{i}]", n) for i, n in enumerate(r.optional(top, "caps", r.sequence, []) or [])]
    contact = None
    if "contact" in top:
        cm = r.mapping(top["contact"], "contact", allowed=["max_actions", "within"], required=["max_actions", "within"])
        if cm and "max_actions" in cm and "within" in cm:
            most = r.integer(cm["max_actions"], "contact.max_actions", min_value=1)
            within = r.duration(cm["within"], "contact.within")
            if most is not None and within is not None:
                contact = ContactLimit(most, within)
    return groups, group_layers, learning, contact, caps
