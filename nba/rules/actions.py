"""Reading one action file (`actions/<id>.yaml`) and the contact limits of actions and of policy.yaml.

Every problem is recorded on the file's Reader with its key path and line; an action with a problem is
not returned (load.py then refuses the whole set).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from nba.domain import EVENT_CODE, EVENT_TYPES
from nba.rules.caps import ACTION, CHANNEL, GROUP, TOTAL, CapRow
from nba.rules.conditions import ALWAYS, AttributeType, Combine, Condition, FieldTest, Vocabulary, compile_condition
from nba.rules.files import Node, Reader, plain, suggest
from nba.rules.reasons import compile_reason
from nba.rules.rulebook import FOREVER, LAYER_KEYS, Action, Channel, Layer

_ACTION_KEYS = [
    "id",
    "name",
    "group",
    "kind",
    "channels",
    "value",
    "weight",
    "active",
    *LAYER_KEYS,
    "purpose",
    "limits",
    "content",
    "reason",
    "mandatory",
    "prior",
    "description",
    "volume",
    "cost",
]
_REQUIRED = ("id", "group", "channels", "value")
_LAYER_ORDER = ("eligibility", "applicability", "suitability", "consent")
_KINDS: dict[str, Literal["offer", "no_action"]] = {"offer": "offer", "no_action": "no_action"}


@dataclass(frozen=True)
class Scope:
    """What an action file is read against: the rest of the rule set."""

    channels: Mapping[str, Channel]
    attributes: Mapping[str, AttributeType]
    segments: frozenset[str]
    groups: Mapping[str, float]  # group -> weight
    group_layers: Mapping[str, list[Layer]]  # the conditions every action of a group inherits
    default_prior: tuple[float, float]


def read_action(r: Reader, node: Node, scope: Scope) -> tuple[Action, list[CapRow]] | None:
    """The action and its limits (their target is -1: the action's index is known once the whole set is
    read); None when the file has a problem."""
    m = r.mapping(node, "", allowed=_ACTION_KEYS, required=_REQUIRED)
    if m is None or not all(k in m for k in _REQUIRED):
        return None
    before = len(r.problems)
    aid = r.ident(m["id"], "id")
    name = r.optional(m, "name", r.text, aid, max_len=200)
    group = _group(r, m, scope)
    text = r.optional(m, "kind", r.text, "offer")
    kind = _KINDS.get(text or "")
    if kind is None:
        r.problem("kind", f"must be offer or no_action, got {text!r}", m["kind"].line)
    channels = _channels(r, m, scope, before)
    value = r.number(m["value"], "value", min_value=0, max_value=1e9)
    weight = r.optional(m, "weight", r.number, 1.0, min_value=0, max_value=1000)
    active_from, active_until = _active(r, m)
    purpose = r.optional(m, "purpose", r.ident, None)
    layers = _layers_of(r, m, scope, group, purpose)
    content: Any = r.optional(m, "content", lambda n, _: plain(n), {})
    if not isinstance(content, dict):
        r.problem("content", "must be a mapping", m["content"].line)
        content = {}
    reason = r.optional(m, "reason", r.text, "", max_len=500)
    template = compile_reason(reason, scope.attributes, r, "reason", m["reason"].line) if reason else ()
    mandatory = r.optional(m, "mandatory", r.boolean, False)
    prior = r.optional(m, "prior", read_prior, scope.default_prior)
    volume_node = r.optional(m, "volume", r.mapping, None, allowed=["per_day"], required=["per_day"])
    volume = (
        r.integer(volume_node["per_day"], "volume.per_day", min_value=0, max_value=1_000_000_000)
        if volume_node and "per_day" in volume_node
        else None
    )
    cost = r.optional(m, "cost", r.number, 0.0, min_value=0, max_value=1e6)
    limits = [
        row
        for i, n in enumerate(r.optional(m, "limits", r.sequence, []) or [])
        for row in read_limit(r, n, f"limits[{i}]", -1, tuple(scope.groups), tuple(scope.channels))
    ]
    if (
        len(r.problems) > before
        or aid is None
        or name is None
        or group is None
        or value is None
        or weight is None
        or reason is None
        or mandatory is None
        or prior is None
        or kind is None
        or cost is None
    ):
        return None
    conditions = [c for _, _, c in layers]
    condition: Condition = (
        ALWAYS if not conditions else conditions[0] if len(conditions) == 1 else Combine("all", tuple(conditions))
    )
    return Action(
        id=aid,
        name=name,
        group=group,
        kind=kind,
        channels=tuple(channels),
        value=value,
        weight=weight,
        active_from=active_from,
        active_until=active_until,
        condition=condition,
        layers=tuple(layers),
        purpose=purpose,
        content=content,
        reason=reason,
        reason_template=template or (),
        mandatory=mandatory,
        prior=prior,
        file=r.file,
        volume=volume,
        cost=cost,
    ), limits


def _group(r: Reader, m: Mapping[str, Node], scope: Scope) -> str | None:
    group = r.ident(m["group"], "group")
    if group is not None and group not in scope.groups:
        r.problem(
            "group",
            f"unknown group {group!r}" + suggest(group, scope.groups) + " (groups are in policy.yaml)",
            m["group"].line,
        )
        return None
    return group


def _channels(r: Reader, m: Mapping[str, Node], scope: Scope, before: int) -> list[str]:
    out: list[str] = []
    for i, n in enumerate(r.sequence(m["channels"], "channels") or []):
        c = r.text(n, f"channels[{i}]")
        if c is not None and c not in scope.channels:
            r.problem(f"channels[{i}]", f"unknown channel {c!r}" + suggest(c, scope.channels), n.line)
        elif c is not None:
            out.append(c)
    if not out and len(r.problems) == before:
        r.problem("channels", "must name at least one channel", m["channels"].line)
    return out


def _active(r: Reader, m: Mapping[str, Node]) -> tuple[float, float]:
    """The validity window; `until: 2027-01-31` means through that whole day."""
    am = r.optional(m, "active", r.mapping, None, allowed=["from", "until"])
    if not am:
        return 0.0, FOREVER
    start = r.optional(am, "from", r.date, None, at="active")
    end = r.optional(am, "until", r.date, None, at="active")
    active_from = start.timestamp() if start else 0.0
    if end is None:
        active_until = FOREVER
    else:
        active_until = (end + dt.timedelta(days=1)).timestamp() if _is_date(am["until"]) else end.timestamp()
    if active_until <= active_from:
        r.problem("active.until", "is before active.from", am["until"].line if "until" in am else None)
    return active_from, active_until


def _layers_of(r: Reader, m: Mapping[str, Node], scope: Scope, group: str | None, purpose: str | None) -> list[Layer]:
    """The group's layers, the action's own, and the consent its purpose needs, in stage order."""
    layers = [*scope.group_layers.get(group or "", []), *read_layers(r, m, "", scope.attributes, scope.segments)]
    if purpose is not None:
        if scope.attributes.get("consents") != "flags":
            r.problem("purpose", "needs a flags attribute named consents in profile.yaml", m["purpose"].line)
        layers.append(("consent", f"{r.file}: purpose", FieldTest("profile", ("consents", purpose), "eq", True)))
    layers.sort(key=lambda layer: _LAYER_ORDER.index(layer[0]))
    return layers


def read_layers(
    r: Reader, m: Mapping[str, Node], path: str, attributes: Mapping[str, AttributeType], segments: frozenset[str]
) -> list[Layer]:
    out: list[Layer] = []
    vocab = Vocabulary(attributes, segments)
    for key, stage in LAYER_KEYS.items():
        if key in m:
            where = f"{path}.{key}" if path else key
            cond = compile_condition(m[key], where, r, vocab)
            if cond is not None:
                out.append((stage, f"{r.file}: {where}", cond))
    return out


def read_prior(r: Reader, node: Node, path: str) -> tuple[float, float] | None:
    m = r.mapping(node, path, allowed=["alpha", "beta"], required=["alpha", "beta"])
    if m is None or "alpha" not in m or "beta" not in m:
        return None
    a = r.number(m["alpha"], f"{path}.alpha", min_value=0.01, max_value=1e6)
    b = r.number(m["beta"], f"{path}.beta", min_value=0.01, max_value=1e6)
    return None if a is None or b is None else (a, b)


def _is_date(node: Node) -> bool:
    return (isinstance(node.value, dt.date) and not isinstance(node.value, dt.datetime)) or (
        isinstance(node.value, str) and len(node.value) == 10
    )


def read_limit(
    r: Reader, node: Node, path: str, action: int | None, groups: tuple[str, ...], channels: tuple[str, ...]
) -> list[CapRow]:
    """The cap rows of one limit: of an action (its index, or -1 until it is known), or of policy.yaml
    (None: per group, per channel or in total)."""
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
