"""The contact caps of a rule set, compiled into one table (decision/contact_policy.py applies it).

Every limit in the rules, whatever its wording, is one row "at most `max` events of type `event` in the
last `window` seconds, counted per action / group / channel / in total". `{after: reject, suppress_for:
30d}` is the row (reject, 30d, max 1); a cooldown after accept is the same with accept. Each row is also
indexed by (scope, target, event type), so counting can find the few rows an event counts for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from nba.domain import EVENT_TYPES, FloatArray, IntArray

ACTION, GROUP, CHANNEL, TOTAL = range(4)  # what a cap row counts per


class CapRow(NamedTuple):
    """One limit of the rules: at most `max` events of type `event` in the last `window` seconds, counted
    per `scope` (for `target`: an action, group or channel index; 0 for total)."""

    scope: int
    target: int
    event: int
    window: float
    max: int
    source: str  # "file: key.path", for explanations


@dataclass(frozen=True)
class CapTable:
    scope: IntArray  # ACTION | GROUP | CHANNEL | TOTAL
    target: IntArray  # action, group or channel index; 0 for total
    event: IntArray  # event type code
    window: FloatArray  # seconds
    max: IntArray  # blocked when count >= max
    source: tuple[str, ...]  # "file: key.path" of each row, for explanations
    # (scope, target, event type) -> (row, window) of the rows an event with that target and type
    # counts for; total rows are under target 0
    rows_for: Mapping[tuple[int, int, int], tuple[tuple[int, float], ...]]
    horizon: float  # the longest window: older history cannot count

    @staticmethod
    def build(rows: Sequence[CapRow]) -> CapTable:
        rows_for: dict[tuple[int, int, int], list[tuple[int, float]]] = {}
        for i, row in enumerate(rows):
            rows_for.setdefault((row.scope, row.target, row.event), []).append((i, float(row.window)))
        return CapTable(
            scope=np.array([r.scope for r in rows], np.int64),
            target=np.array([r.target for r in rows], np.int64),
            event=np.array([r.event for r in rows], np.int64),
            window=np.array([r.window for r in rows], np.float64),
            max=np.array([r.max for r in rows], np.int64),
            source=tuple(r.source for r in rows),
            rows_for={k: tuple(v) for k, v in rows_for.items()},
            horizon=max((float(r.window) for r in rows), default=0.0),
        )

    def __len__(self) -> int:
        return int(self.scope.shape[0])


def describe(caps: CapTable, row: int, count: int) -> str:
    return (
        f"{caps.source[row]}: {count} x {EVENT_TYPES[caps.event[row]]} in the last "
        f"{_window(float(caps.window[row]))} reaches the limit of {int(caps.max[row])}"
    )


def _window(seconds: float) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
