"""Contact policy: what a customer's recent contacts forbid now, over every action at once.

The caps are rows of the rule set's CapTable (rules/caps.py). Counting walks the customer's recent
history once: each event finds the few rows it can count for by a lookup on (scope, target, event type),
so the cost grows with the history, never with the catalogue or the number of rows (1,000 actions with
2 limits each cost what 15 do). Deciding what the counts forbid is vectorised over the actions.
"""

from __future__ import annotations

import numpy as np

from nba.domain import BoolArray, History, IntArray
from nba.rules.caps import ACTION, CHANNEL, GROUP, TOTAL, CapTable, describe


def counts(caps: CapTable, history: History, now: float, group_of: IntArray) -> IntArray:
    """The current count of every cap row for this customer: each event in the history adds one to the
    rows of its action, its action's group, its channel and the totals that count its type, when it lies
    inside the row's window. Events of actions or channels no longer in the rules count in totals only."""
    hits: dict[int, int] = {}  # row -> count, for the few rows any event counts for
    rows_for = caps.rows_for
    n_actions = group_of.shape[0]
    for ts, event, action, channel in zip(
        history.ts.tolist(), history.event.tolist(), history.action.tolist(), history.channel.tolist(), strict=True
    ):
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


def blocked(
    caps: CapTable, row_counts: IntArray, channel: int, group_of: IntArray, mandatory: BoolArray, n_groups: int
) -> BoolArray:
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


def reasons(
    caps: CapTable, row_counts: IntArray, channel: int, group_of: IntArray, mandatory: BoolArray
) -> dict[int, str]:
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
