"""The declared features (rules/features.py) of one decision as a float vector, and that vector packed
into the decision record for the learner (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any

import numpy as np

from nba.domain import FloatArray
from nba.rules.features import Feature, FeatureSpace


def _raw(feature: Feature, attributes: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
    if feature.source == "context":
        return context.get(feature.name)
    head, _, flag = feature.name.partition(".")
    value = attributes.get(head)
    if flag:
        return value.get(flag) if isinstance(value, dict) else None
    return value


def encode(
    space: FeatureSpace, attributes: Mapping[str, Any], context: Mapping[str, Any], segments: Set[str]
) -> FloatArray:
    x = np.zeros(space.dim)
    x[0] = 1.0
    at = 1
    for f in space.features:
        if f.source == "segment":
            x[at] = 1.0 if f.name in segments else 0.0
        else:
            v = _raw(f, attributes, context)
            if f.encoding == "one_hot":
                for item in v if isinstance(v, list) else [v]:
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
    for (i, j), at in zip(space.crosses, space.offsets[len(space.features) :], strict=True):
        fi, fj = space.features[i], space.features[j]
        oi, oj = space.offsets[i], space.offsets[j]
        x[at : at + fi.width * fj.width] = np.outer(x[oi : oi + fi.width], x[oj : oj + fj.width]).ravel()
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
