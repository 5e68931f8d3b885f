"""The contact caps of a rule set, compiled into one table (decision/contact_policy.py applies it).

Every limit in the rules, whatever its wording, is one row "at most `max` events of type `event` in the
last `window` seconds, counted per action / group / channel / in total". `{after: reject, suppress_for:
30d}` is the row (reject, 30d, max 1); a cooldown after accept is the same with accept. Each row is also
indexed by (scope, target, event type), so counting can find the few rows an event counts for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from nba.domain import EVENT_TYPES, FloatArray, IntArray

ACTION, GROUP, CHANNEL, TOTAL = range(4)  # what a cap row counts per


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
    def build(rows: list[tuple[int, int, int, float, int, str]]) -> CapTable:
        rows_for: dict[tuple[int, int, int], list[tuple[int, float]]] = {}
        for i, (scope, target, event, window, _, _) in enumerate(rows):
            rows_for.setdefault((scope, target, event), []).append((i, float(window)))
        return CapTable(
            scope=np.array([r[0] for r in rows], np.int64), target=np.array([r[1] for r in rows], np.int64),
            event=np.array([r[2] for r in rows], np.int64), window=np.array([r[3] for r in rows], np.float64),
            max=np.array([r[4] for r in rows], np.int64), source=tuple(r[5] for r in rows),
            rows_for={k: tuple(v) for k, v in rows_for.items()},
            horizon=max((float(r[3]) for r in rows), default=0.0),
        )

    def __len__(self) -> int:
        return int(self.scope.shape[0])


def describe(caps: CapTable, row: int, count: int) -> str:
    return (f"{caps.source[row]}: {count} x {EVENT_TYPES[caps.event[row]]} in the last "
            f"{_window(float(caps.window[row]))} reaches the limit of {int(caps.max[row])}")


def _window(seconds: float) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
