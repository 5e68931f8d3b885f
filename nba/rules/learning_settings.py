"""The `learning:` section of policy.yaml as a typed value, validated at load: which model ranks on
which channel, how much it explores, what each answer is worth and for how long it counts, the
features of the contextual model and the control group."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from nba.domain import EVENT_CODE, EVENT_TYPES
from nba.rules.conditions import AttributeType
from nba.rules.features import MAX_COLUMNS, Feature, FeatureSpace, Source
from nba.rules.files import Node, Reader, suggest

Model = Literal["thompson", "contextual"]
MODELS: tuple[Model, ...] = ("thompson", "contextual")
DEFAULT_WINDOW = 7 * 86400.0


@dataclass(frozen=True)
class ChannelLearning:
    """Resolved per channel: the section's defaults with the channel's overrides."""

    model: Model
    exploration: float  # 1: Thompson sampling as is; 0: always the posterior mean; between: narrower draws
    attribution_window: float  # seconds after a decision in which answers to it train the model
    rewards: Mapping[str, float]  # event type -> reward in [0, 1]; missing types carry no reward


@dataclass(frozen=True)
class Control:
    """A stable share of customers (by a hash of their id) decided without the model, to measure lift."""

    share: float
    ordering: Literal["random", "rules"]  # a random eligible order, or what the rules alone imply

    def includes(self, bucket: float) -> bool:
        return bucket < self.share


@dataclass(frozen=True)
class Learning:
    segment_key: tuple[str, ...] = ()  # the first of these segments a customer is in is the model's key
    prior: tuple[float, float] = (1.0, 1.0)
    rewards: Mapping[str, float] = field(default_factory=lambda: {"accept": 1.0})
    refresh_seconds: float = 1.0
    channels: Mapping[str, ChannelLearning] = field(default_factory=dict)
    features: FeatureSpace = field(default_factory=lambda: FeatureSpace(()))
    prior_variance: float = 0.05  # how far an action's weights may stray from its group's (contextual)
    # the variance of one answer around its expectation (contextual); None: learned per action from its
    # reward rate (contextual.noise_variances), the default
    noise_variance: float | None = None
    control: Control | None = None
    # seconds after which an answer counts half as much in the model (learning/forgetting.py); 0: never.
    # One per model, not per channel: every channel's answers train the same statistics
    half_life: float = 0.0

    @property
    def keys(self) -> tuple[str, ...]:
        return (*self.segment_key, "other")

    def for_channel(self, channel: str) -> ChannelLearning:
        return self.channels.get(channel) or ChannelLearning("thompson", 1.0, DEFAULT_WINDOW, self.rewards)


_KEYS = [
    "model",
    "segment_key",
    "prior",
    "rewards",
    "refresh_seconds",
    "probability_draws",
    "half_life",
    "exploration",
    "attribution_window",
    "channels",
    "contextual",
    "control",
]


def parse_learning(
    r: Reader,
    node: Node,
    segments: frozenset[str],
    attributes: Mapping[str, AttributeType],
    list_values: Mapping[str, tuple[str, ...]],
    channels: tuple[str, ...],
    prior: tuple[float, float] | None,
) -> Learning:
    lm = r.mapping(node, "learning", allowed=_KEYS, required=["rewards"])
    if lm is None:
        return Learning()
    key: list[str] = []
    for i, n in enumerate(r.optional(lm, "segment_key", r.sequence, [], at="learning") or []):
        s = r.text(n, f"learning.segment_key[{i}]")
        if s is not None and s not in segments:
            r.problem(f"learning.segment_key[{i}]", f"unknown segment {s!r}" + suggest(s, segments), n.line)
        elif s is not None:
            key.append(s)
    rewards = r.optional(lm, "rewards", lambda n, path: _rewards(r, n, path), {}, at="learning") or {}
    refresh = r.optional(lm, "refresh_seconds", r.number, 1.0, at="learning", min_value=0.05, max_value=60)
    if "probability_draws" in lm:  # a setting of the Monte Carlo estimate this replaced
        r.problem(
            "learning.probability_draws",
            "no longer used: placement probabilities are integrated exactly; remove this line",
            lm["probability_draws"].line,
        )
    half_life = r.optional(lm, "half_life", r.duration, None, at="learning")
    if half_life is not None and half_life < 60:
        r.problem("learning.half_life", "must be at least 1m", lm["half_life"].line)
    explore_all = _exploration(r, lm, "learning")
    default = ChannelLearning(
        _model(r, lm, "learning") or "thompson",
        1.0 if explore_all is None else explore_all,  # 0 is a setting (always the mean), not "unset"
        _window(r, lm, "learning") or DEFAULT_WINDOW,
        rewards,
    )
    resolved = {ch: default for ch in channels}
    if "channels" in lm:
        for name, n in (r.mapping(lm["channels"], "learning.channels", allowed=channels) or {}).items():
            p = f"learning.channels.{name}"
            cm = r.mapping(n, p, allowed=["model", "exploration", "attribution_window", "rewards"])
            if cm is None or name not in resolved:
                continue
            explore = _exploration(r, cm, p)
            resolved[name] = ChannelLearning(
                _model(r, cm, p) or default.model,
                default.exploration if explore is None else explore,
                _window(r, cm, p) or default.attribution_window,
                {**rewards, **(r.optional(cm, "rewards", lambda n, path: _rewards(r, n, path), {}, at=p) or {})},
            )
    space, prior_var, noise_var = FeatureSpace(()), 0.05, None
    if "contextual" in lm:
        space, prior_var, noise_var = _contextual(r, lm["contextual"], segments, attributes, list_values)
    if any(c.model == "contextual" for c in resolved.values()) and "contextual" not in lm:
        r.problem("learning.contextual", "a channel uses the contextual model: declare its features here", node.line)
    control = r.optional(lm, "control", lambda n, _: _control(r, n), None)
    return Learning(
        tuple(key),
        prior or (1.0, 1.0),
        rewards,
        refresh or 1.0,
        resolved,
        space,
        prior_var,
        noise_var,
        control,
        half_life or 0.0,
    )


def _model(r: Reader, m: Mapping[str, Node], path: str) -> Model | None:
    if "model" not in m:
        return None
    v = r.text(m["model"], f"{path}.model")
    for model in MODELS:
        if v == model:
            return model
    if v is not None:
        r.problem(f"{path}.model", f"unknown model {v!r}; available: {', '.join(MODELS)}", m["model"].line)
    return None


def _exploration(r: Reader, m: Mapping[str, Node], path: str) -> float | None:
    return r.optional(m, "exploration", r.number, None, at=path, min_value=0, max_value=2)


def _window(r: Reader, m: Mapping[str, Node], path: str) -> float | None:
    return r.optional(m, "attribution_window", r.duration, None, at=path)


def _rewards(r: Reader, node: Node, path: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for ev, n in (r.mapping(node, path, allowed=EVENT_TYPES) or {}).items():
        v = r.number(n, f"{path}.{ev}", min_value=0, max_value=1)
        if v is not None and ev in EVENT_CODE:
            out[ev] = v
    return out


def _control(r: Reader, node: Node) -> Control | None:
    m = r.mapping(node, "learning.control", allowed=["share", "ordering"], required=["share"])
    if m is None or "share" not in m:
        return None
    share = r.number(m["share"], "learning.control.share", min_value=0, max_value=0.5)
    ordering = r.optional(m, "ordering", r.text, "random", at="learning.control")
    if ordering not in ("random", "rules"):
        r.problem("learning.control.ordering", f"must be random or rules, got {ordering!r}", m["ordering"].line)
        return None
    return None if share is None else Control(share, "random" if ordering == "random" else "rules")


_ENCODINGS = ("one_hot", "buckets", "scale")


def _contextual(
    r: Reader,
    node: Node,
    segments: frozenset[str],
    attributes: Mapping[str, AttributeType],
    list_values: Mapping[str, tuple[str, ...]],
) -> tuple[FeatureSpace, float, float | None]:
    m = r.mapping(
        node, "learning.contextual", allowed=["features", "prior_variance", "noise_variance"], required=["features"]
    )
    if m is None:
        return FeatureSpace(()), 0.05, None
    prior_var = r.optional(m, "prior_variance", r.number, 0.05, at="learning.contextual", min_value=1e-4, max_value=100)
    noise_var = None
    if "noise_variance" in m and m["noise_variance"].value != "auto":
        noise_var = r.number(m["noise_variance"], "learning.contextual.noise_variance", min_value=1e-3, max_value=10)
    out: list[Feature] = []
    crosses: list[tuple[str, Node]] = []
    for i, n in enumerate(r.optional(m, "features", r.sequence, [], at="learning.contextual") or []):
        path = f"learning.contextual.features[{i}]"
        if isinstance(n.value, dict) and "cross" in n.value:
            crosses.append((path, n))
            continue
        f = _feature(r, n, path, segments, attributes, list_values)
        if f is not None:
            out.append(f)
    if len(out) > 64:
        r.problem("learning.contextual.features", f"{len(out)} features, at most 64", m["features"].line)
    pairs = [p for p in (_cross(r, n, path, out) for path, n in crosses) if p is not None]
    space = FeatureSpace(tuple(out), tuple(pairs))
    if space.dim > MAX_COLUMNS:
        r.problem(
            "learning.contextual.features",
            f"{space.dim} columns (intercept, features and crosses), at most {MAX_COLUMNS}",
            m["features"].line,
        )
    return space, prior_var or 0.05, noise_var


def _cross(r: Reader, node: Node, path: str, features: list[Feature]) -> tuple[int, int] | None:
    """`{cross: [a, b]}`: two other declared features by name (attribute, context key or segment)."""
    m = r.mapping(node, path, allowed=["cross"])
    names = r.sequence(m["cross"], f"{path}.cross") if m is not None else None
    if names is None:
        return None
    if len(names) != 2:
        r.problem(f"{path}.cross", "must name two features", node.line)
        return None
    found: list[int] = []
    for k, n in enumerate(names):
        name = r.text(n, f"{path}.cross[{k}]")
        matches = [i for i, f in enumerate(features) if f.name == name]
        if name is not None and len(matches) != 1:
            known = sorted({f.name for f in features})
            why = "is not a declared feature" + suggest(name, known) if not matches else "names several features"
            r.problem(f"{path}.cross[{k}]", f"{name!r} {why}", n.line)
        elif name is not None:
            found.append(matches[0])
    if len(found) == 2 and found[0] == found[1]:
        r.problem(f"{path}.cross", "must name two different features", node.line)
        return None
    return (found[0], found[1]) if len(found) == 2 else None


def _feature(
    r: Reader,
    node: Node,
    path: str,
    segments: frozenset[str],
    attributes: Mapping[str, AttributeType],
    list_values: Mapping[str, tuple[str, ...]],
) -> Feature | None:
    m = r.mapping(node, path, allowed=["attribute", "context", "segment", *_ENCODINGS])
    if m is None:
        return None
    sources = [s for s in ("attribute", "context", "segment") if s in m]
    if len(sources) != 1:
        r.problem(path, "name exactly one of attribute, context or segment", node.line)
        return None
    source = sources[0]
    name = r.text(m[source], f"{path}.{source}", max_len=128)
    if name is None:
        return None
    if source == "segment":
        if name not in segments:
            r.problem(f"{path}.segment", f"unknown segment {name!r}" + suggest(name, segments), m[source].line)
            return None
        return Feature("segment", name, "flag")
    encodings = [e for e in _ENCODINGS if e in m]
    src: Source = "attribute" if source == "attribute" else "context"
    kind: AttributeType | None = None
    if source == "attribute":
        head, _, flag = name.partition(".")
        kind = attributes.get(head)
        if kind is None:
            r.problem(f"{path}.attribute", f"unknown attribute {head!r}" + suggest(head, attributes), m[source].line)
            return None
        if kind == "flags" and flag:
            if encodings:
                r.problem(path, f"{name!r} is a flag: it needs no encoding", node.line)
            return Feature("attribute", name, "flag")
        if kind == "boolean" and not encodings:
            return Feature("attribute", name, "flag")
    if len(encodings) != 1:
        r.problem(path, "give one encoding: one_hot: [values], buckets: [edges] or scale: number", node.line)
        return None
    enc = encodings[0]
    if enc == "one_hot":
        return _one_hot(r, m[enc], f"{path}.{enc}", src, name, kind, list_values.get(name, ()))
    return _numeric(r, m[enc], enc, f"{path}.{enc}", src, name, kind)


def _one_hot(
    r: Reader, node: Node, p: str, src: Source, name: str, kind: AttributeType | None, known: tuple[str, ...]
) -> Feature | None:
    if kind is not None and kind not in ("string", "list"):
        r.problem(p, f"one_hot needs a string or list attribute; {name!r} is a {kind}", node.line)
        return None
    values = [r.text(v, f"{p}[{j}]", max_len=128) for j, v in enumerate(r.sequence(node, p) or [])]
    if not values or any(v is None for v in values) or len(set(values)) != len(values):
        r.problem(p, "must list distinct values", node.line)
        return None
    for v in values:
        if known and v not in known:
            r.problem(p, f"{v!r} is not a value of {name}" + suggest(str(v), known), node.line)
    return Feature(src, name, "one_hot", values=tuple(str(v) for v in values))


def _numeric(
    r: Reader, node: Node, enc: str, p: str, src: Source, name: str, kind: AttributeType | None
) -> Feature | None:
    """buckets: [edges] or scale: number, of a number attribute or context key."""
    if kind is not None and kind not in ("number", "integer"):
        r.problem(p, f"{enc} needs a number attribute; {name!r} is a {kind}", node.line)
        return None
    if enc == "buckets":
        edges = [r.number(v, f"{p}[{j}]") for j, v in enumerate(r.sequence(node, p) or [])]
        clean = [e for e in edges if e is not None]
        if not clean or len(clean) != len(edges) or any(b <= a for a, b in itertools.pairwise(clean)):
            r.problem(p, "must be increasing numbers", node.line)
            return None
        return Feature(src, name, "buckets", edges=tuple(clean))
    scale = r.number(node, p, min_value=1e-9)
    return None if scale is None else Feature(src, name, "scale", scale=scale)
