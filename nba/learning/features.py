"""Features of the contextual model: what marketers declare in `learning.contextual.features`, encoded
into one float vector per decision (pure, no I/O).

Every vector starts with a constant 1 (the intercept: an action's baseline acceptance). Encodings:
- `one_hot: [a, b, c]`: one column per listed value (a list attribute sets several: multi-hot); values
  not listed set none, so a new plan name is "none of the known ones", not an error;
- `buckets: [20, 40, 60]`: one column per interval (below 20, 20-40, 40-60, 60 and above);
- `scale: 120`: value / 120 clipped to [0, 1] (one column);
- `segment: name`: 1 when the customer is in the segment;
- a flag attribute (`consents.email`): 1 when true.
A missing value sets no column of its feature: the intercept and the other features carry the decision.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping, Set
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np

from nba.domain import FloatArray

Source = Literal["attribute", "context", "segment"]
Encoding = Literal["one_hot", "buckets", "scale", "flag"]


@dataclass(frozen=True)
class Feature:
    source: Source
    name: str  # attribute (may be `consents.email`), context key or segment
    encoding: Encoding
    values: tuple[str, ...] = ()  # one_hot
    edges: tuple[float, ...] = ()  # buckets
    scale: float = 1.0

    @property
    def width(self) -> int:
        if self.encoding == "one_hot":
            return len(self.values)
        if self.encoding == "buckets":
            return len(self.edges) + 1
        return 1

    def column_names(self) -> list[str]:
        base = f"{self.source}:{self.name}"
        if self.encoding == "one_hot":
            return [f"{base}={v}" for v in self.values]
        if self.encoding == "buckets":
            bounds = ["-inf", *(f"{e:g}" for e in self.edges), "inf"]
            return [f"{base}[{lo},{hi})" for lo, hi in itertools.pairwise(bounds)]
        return [base]


@dataclass(frozen=True)
class FeatureSpace:
    features: tuple[Feature, ...]

    @property
    def dim(self) -> int:
        return 1 + sum(f.width for f in self.features)

    def column_names(self) -> list[str]:
        return ["intercept", *(c for f in self.features for c in f.column_names())]

    @cached_property
    def signature(self) -> str:
        """Names every column: learned statistics are only reused by a space with the same columns."""
        return hashlib.sha256("\n".join(self.column_names()).encode()).hexdigest()[:12]


def _raw(feature: Feature, attributes: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
    if feature.source == "context":
        return context.get(feature.name)
    head, _, flag = feature.name.partition(".")
    value = attributes.get(head)
    if flag:
        return value.get(flag) if isinstance(value, dict) else None
    return value


def encode(space: FeatureSpace, attributes: Mapping[str, Any], context: Mapping[str, Any],
           segments: Set[str]) -> FloatArray:
    x = np.zeros(space.dim)
    x[0] = 1.0
    at = 1
    for f in space.features:
        if f.source == "segment":
            x[at] = 1.0 if f.name in segments else 0.0
        else:
            v = _raw(f, attributes, context)
            if f.encoding == "one_hot":
                for item in (v if isinstance(v, list) else [v]):
                    if isinstance(item, str) and item in f.values:
                        x[at + f.values.index(item)] = 1.0
            elif isinstance(v, bool):
                if f.encoding == "flag":
                    x[at] = 1.0 if v else 0.0
            elif isinstance(v, int | float):
                if f.encoding == "buckets":
                    x[at + int(np.searchsorted(np.asarray(f.edges), v, side="right"))] = 1.0
                elif f.encoding == "scale":
                    x[at] = min(1.0, max(0.0, v / f.scale))
        at += f.width
    return x


def pack(x: FloatArray) -> str:
    """A feature vector as the decision record keeps it: `index:value` of the non-zero columns."""
    nz = np.flatnonzero(x)
    return ",".join(f"{i}:{x[i]:.6g}" for i in nz.tolist())


def unpack(text: str, dim: int) -> FloatArray:
    x = np.zeros(dim)
    if text:
        for item in text.split(","):
            i, _, v = item.partition(":")
            if int(i) < dim:
                x[int(i)] = float(v)
    return x
