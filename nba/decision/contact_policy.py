"""Contact policy: frequency caps and suppressions over sliding windows.

Every limit in the rules, whatever its wording, is one row "at most `max` events of type `event` in the
last `window` seconds, counted per action / group / channel / in total". `{after: reject, suppress_for:
30d}` is the row (reject, 30d, max 1); a cooldown after accept is the same with accept. Counting walks
the customer's recent history once: each event finds the few rows it can count for by a lookup on
(scope, target, event type), so the cost grows with the history, never with the catalogue or the
number of rows (1,000 actions with 2 limits each cost what 15 do). Deciding what the counts forbid is
vectorised over the actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from nba.domain import EVENT_TYPES, BoolArray, FloatArray, History, IntArray

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


def counts(caps: CapTable, history: History, now: float, group_of: IntArray) -> IntArray:
    """The current count of every cap row for this customer: each event in the history adds one to the
    rows of its action, its action's group, its channel and the totals that count its type, when it lies
    inside the row's window. Events of actions or channels no longer in the rules count in totals only."""
    hits: dict[int, int] = {}  # row -> count, for the few rows any event counts for
    rows_for = caps.rows_for
    n_actions = group_of.shape[0]
    for ts, event, action, channel in zip(history.ts.tolist(), history.event.tolist(), history.action.tolist(),
                                          history.channel.tolist(), strict=True):
        keys = [(TOTAL, 0, event)]
        if 0 <= action < n_actions:
            keys += [(ACTION, action, event), (GROUP, int(group_of[action]), event)]
        if channel >= 0:
            keys.append((CHANNEL, channel, event))
        for key in keys:
            for row, window in rows_for.get(key, ()):
                if ts > now - window:
                    hits[row] = hits.get(row, 0) + 1
    out = np.zeros(len(caps), np.int64)
    if hits:
        out[list(hits)] = list(hits.values())
    return out


def blocked(caps: CapTable, row_counts: IntArray, channel: int, group_of: IntArray, mandatory: BoolArray,
            n_groups: int) -> BoolArray:
    """Actions a cap forbids now. Channel caps bind only decisions on that channel; mandatory actions
    (legal or service messages) bypass every cap."""
    n_actions = group_of.shape[0]
    over = row_counts >= caps.max
    out = np.zeros(n_actions, bool)
    if not over.any():
        return out
    out[caps.target[over & (caps.scope == ACTION)]] = True
    group_over = np.zeros(n_groups, bool)
    group_over[caps.target[over & (caps.scope == GROUP)]] = True
    out |= group_over[group_of]
    if (over & (((caps.scope == CHANNEL) & (caps.target == channel)) | (caps.scope == TOTAL))).any():
        out[:] = True
    out &= ~mandatory
    return out


def describe(caps: CapTable, row: int, count: int) -> str:
    return (f"{caps.source[row]}: {count} x {EVENT_TYPES[caps.event[row]]} in the last "
            f"{_window(float(caps.window[row]))} reaches the limit of {int(caps.max[row])}")


def reasons(caps: CapTable, row_counts: IntArray, channel: int, group_of: IntArray,
            mandatory: BoolArray) -> dict[int, str]:
    """For explanations only (a Python loop, off the hot path): action index -> the first cap that binds."""
    out: dict[int, str] = {}
    for row in np.flatnonzero(row_counts >= caps.max):
        scope, target = int(caps.scope[row]), int(caps.target[row])
        if scope == ACTION:
            hit = [target]
        elif scope == GROUP:
            hit = list(np.flatnonzero(group_of == target))
        elif scope == CHANNEL and target != channel:
            continue
        else:
            hit = list(range(group_of.shape[0]))
        for a in hit:
            if not mandatory[a]:
                out.setdefault(int(a), describe(caps, int(row), int(row_counts[row])))
    return out


def _window(seconds: float) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
