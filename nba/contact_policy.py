"""Contact policy: frequency caps and suppressions over sliding windows, vectorised over actions.

Every limit in the rules, whatever its wording, is one row "at most `max` events of type `event` in the
last `window` seconds, counted per action / group / channel / in total". `{after: reject, suppress_for:
30d}` is the row (reject, 30d, max 1); a cooldown after accept is the same with accept. Counting is done
once per distinct (event, window) pair with `np.bincount`, so 1,000 actions with 2 limits each cost a
handful of numpy calls.
"""

from __future__ import annotations

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
    slot: IntArray  # the action an action row counts, -1 for the other rows (see counts)

    @staticmethod
    def build(rows: list[tuple[int, int, int, float, int, str]]) -> CapTable:
        scope, target = np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.int64)
        return CapTable(
            scope=scope, target=target,
            event=np.array([r[2] for r in rows], np.int64), window=np.array([r[3] for r in rows], np.float64),
            max=np.array([r[4] for r in rows], np.int64), source=tuple(r[5] for r in rows),
            slot=np.where(scope == ACTION, target, -1),
        )

    def __len__(self) -> int:
        return int(self.scope.shape[0])


def counts(caps: CapTable, history: History, now: float, group_of: IntArray) -> IntArray:
    """The current count of every cap row for this customer.

    One boolean matrix (rows x history events) answers every row at once: the event has the row's
    type, lies inside the row's window, and belongs to the row's action / group / channel. Action rows
    whose action is not in the history cannot count anything and are skipped, so 1,000 actions with a
    short history cost what a handful of rows cost."""
    out = np.zeros(len(caps), np.int64)
    if len(history) == 0 or len(caps) == 0:
        return out
    # one slot per action plus a last one that is always set: rows that are not per action (slot -1)
    # land there, and so do events of unknown actions (-1), which count for those rows only
    in_history = np.zeros(group_of.shape[0] + 1, bool)
    in_history[history.action] = True
    in_history[-1] = True
    rows = np.flatnonzero(in_history[caps.slot])
    if rows.shape[0] == 0:
        return out
    by_scope = np.empty((4, len(history)), np.int64)
    by_scope[ACTION] = history.action
    by_scope[GROUP] = group_of[history.action]
    by_scope[GROUP, history.action < 0] = -1
    by_scope[CHANNEL] = history.channel
    by_scope[TOTAL] = 0
    target = caps.target[rows][:, None]
    hit = (
        (by_scope[caps.scope[rows]] == target)
        & (history.event[None, :] == caps.event[rows][:, None])
        & (history.ts[None, :] > now - caps.window[rows][:, None])
    )
    out[rows] = hit.sum(axis=1)
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
