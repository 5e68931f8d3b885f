"""Features of the contextual model as marketers declare them in `learning.contextual.features`
(learning/features.py encodes them into one float vector per decision).

Every vector starts with a constant 1 (the intercept: an action's baseline acceptance). Encodings:
- `one_hot: [a, b, c]`: one column per listed value (a list attribute sets several: multi-hot); values
  not listed set none, so a new plan name is "none of the known ones", not an error;
- `buckets: [20, 40, 60]`: one column per interval (below 20, 20-40, 40-60, 60 and above);
- `scale: 120`: value / 120 clipped to [0, 1] (one column);
- `segment: name`: 1 when the customer is in the segment;
- a flag attribute (`consents.email`): 1 when true;
- `cross: [device, plan]`: one column per pair of the two named features' columns, 1 when both are (the
  product): the model is additive per action, so "plan large on mobile" needs its own column to differ
  from "plan large" plus "on mobile".
A missing value sets no column of its feature: the intercept and the other features carry the decision.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

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


MAX_COLUMNS = 128  # each action keeps a columns x columns matrix, inverted at every model version


@dataclass(frozen=True)
class FeatureSpace:
    features: tuple[Feature, ...]
    crosses: tuple[tuple[int, int], ...] = ()  # pairs of indices into features

    @property
    def dim(self) -> int:
        return (
            1
            + sum(f.width for f in self.features)
            + sum(self.features[i].width * self.features[j].width for i, j in self.crosses)
        )

    @cached_property
    def offsets(self) -> tuple[int, ...]:
        """The first column of each feature (column 0 is the intercept), then the first of each cross."""
        out, at = [], 1
        for f in self.features:
            out.append(at)
            at += f.width
        for i, j in self.crosses:
            out.append(at)
            at += self.features[i].width * self.features[j].width
        return tuple(out)

    def column_names(self) -> list[str]:
        names = [c for f in self.features for c in f.column_names()]
        for i, j in self.crosses:
            names += [f"{a}*{b}" for a in self.features[i].column_names() for b in self.features[j].column_names()]
        return ["intercept", *names]

    @cached_property
    def signature(self) -> str:
        """Names every column: learned statistics are only reused by a space with the same columns."""
        return hashlib.sha256("\n".join(self.column_names()).encode()).hexdigest()[:12]
