"""Features of the contextual model as marketers declare them in `learning.contextual.features`
(learning/features.py encodes them into one float vector per decision).

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
