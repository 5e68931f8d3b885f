"""Caps and suppressions at their boundaries: N-1, N, N+1 events; the window's edges."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from nba.decision import contact_policy as cp
from nba.domain import EVENT_CODE, History
from nba.rules import caps as cap_rows
from nba.rules.rulebook import QuietHours

DAY = 86400.0
NOW = 1_000_000_000.0
IMP, REJ = EVENT_CODE["impression"], EVENT_CODE["reject"]
GROUP_OF = np.array([0, 0, 1])  # actions 0 and 1 in group 0, action 2 in group 1
NO_MANDATORY = np.zeros(3, bool)


def _history(rows: list[tuple[float, int, int, int]]) -> History:
    if not rows:
        return History.empty()
    ts, ev, act, ch = zip(*rows, strict=True)
    return History(np.array(ts, float), np.array(ev), np.array(act), np.array(ch))


def _blocked(
    caps: cap_rows.CapTable, history: History, channel: int = 0, mandatory: np.ndarray = NO_MANDATORY
) -> list[bool]:
    counts = cp.counts(caps, history, NOW, GROUP_OF)
    result: list[bool] = cp.blocked(caps, counts, channel, GROUP_OF, mandatory, 2).tolist()
    return result


@pytest.mark.parametrize(("shown", "blocked"), [(2, False), (3, True), (4, True)])
def test_action_cap_at_n_minus_1_n_n_plus_1(shown: int, blocked: bool) -> None:
    caps = cap_rows.CapTable.build([cap_rows.CapRow(cap_rows.ACTION, 0, IMP, 7 * DAY, 3, "a")])
    history = _history([(NOW - i * DAY, IMP, 0, 0) for i in range(shown)])
    assert _blocked(caps, history) == [blocked, False, False]


@pytest.mark.parametrize(("age", "blocked"), [(7 * DAY - 1, True), (7 * DAY, False), (7 * DAY + 1, False)])
def test_window_edges(age: float, blocked: bool) -> None:
    """An event exactly one window old has left the window."""
    caps = cap_rows.CapTable.build([cap_rows.CapRow(cap_rows.ACTION, 0, IMP, 7 * DAY, 1, "a")])
    assert _blocked(caps, _history([(NOW - age, IMP, 0, 0)]))[0] is blocked


def test_suppression_after_reject_counts_only_rejects() -> None:
    caps = cap_rows.CapTable.build([cap_rows.CapRow(cap_rows.ACTION, 1, REJ, 30 * DAY, 1, "after reject")])
    assert _blocked(caps, _history([(NOW - DAY, IMP, 1, 0)] * 5)) == [False, False, False]
    assert _blocked(caps, _history([(NOW - DAY, REJ, 1, 0)])) == [False, True, False]


def test_group_channel_and_total_caps() -> None:
    group = cap_rows.CapTable.build([cap_rows.CapRow(cap_rows.GROUP, 0, IMP, DAY, 2, "g")])
    history = _history([(NOW - 10, IMP, 0, 0), (NOW - 20, IMP, 1, 0)])
    assert _blocked(group, history) == [True, True, False]
    channel = cap_rows.CapTable.build([cap_rows.CapRow(cap_rows.CHANNEL, 1, IMP, DAY, 1, "email")])
    on_email = _history([(NOW - 10, IMP, 2, 1)])
    assert _blocked(channel, on_email, channel=1) == [True, True, True]
    assert _blocked(channel, on_email, channel=0) == [False, False, False]
    total = cap_rows.CapTable.build([cap_rows.CapRow(cap_rows.TOTAL, 0, IMP, DAY, 2, "t")])
    assert _blocked(total, history) == [True, True, True]


def test_mandatory_actions_bypass_caps_and_unknown_actions_count_only_in_totals() -> None:
    caps = cap_rows.CapTable.build([cap_rows.CapRow(cap_rows.TOTAL, 0, IMP, DAY, 1, "t")])
    history = _history([(NOW - 10, IMP, -1, -1)])  # an action no longer in the rules
    assert _blocked(caps, history, mandatory=np.array([False, False, True])) == [True, True, False]
    # nor in any action's or group's count (the last action's group, 1, included)
    for scope, target in ((cap_rows.ACTION, 2), (cap_rows.GROUP, 1), (cap_rows.GROUP, 0)):
        one = cap_rows.CapTable.build([cap_rows.CapRow(scope, target, IMP, DAY, 1, "x")])
        assert cp.counts(one, history, NOW, GROUP_OF).tolist() == [0]


def test_reasons_name_the_binding_cap() -> None:
    caps = cap_rows.CapTable.build([cap_rows.CapRow(cap_rows.ACTION, 0, IMP, 7 * DAY, 2, "actions/x.yaml: limits[0]")])
    history = _history([(NOW - 10, IMP, 0, 0), (NOW - 20, IMP, 0, 0)])
    counts = cp.counts(caps, history, NOW, GROUP_OF)
    assert cp.reasons(caps, counts, 0, GROUP_OF, NO_MANDATORY) == {
        0: "actions/x.yaml: limits[0]: 2 x impression in the last 1w reaches the limit of 2"
    }


def _utc(hour: int, minute: int) -> float:
    return dt.datetime(2026, 11, 23, hour, minute, tzinfo=dt.UTC).timestamp()


def test_quiet_hours_wrap_past_midnight_in_local_time() -> None:
    quiet = QuietHours(21 * 60, 8 * 60, "Europe/Amsterdam")  # UTC+1 in November
    at = _utc
    assert not quiet.covers(at(19, 59))  # 20:59 local
    assert quiet.covers(at(20, 0))  # 21:00 local: quiet starts
    assert quiet.covers(at(6, 59))  # 07:59 local
    assert not quiet.covers(at(7, 0))  # 08:00 local: quiet ends


def test_counts_agree_with_counting_each_row_by_its_definition() -> None:
    rng = np.random.default_rng(5)
    n_actions, n_groups, n_channels = 40, 4, 3
    group_of = rng.integers(0, n_groups, n_actions)
    events = (IMP, REJ, EVENT_CODE["accept"])
    for _ in range(50):
        rows = []
        for i in range(int(rng.integers(1, 60))):
            scope = int(rng.integers(0, 4))
            target = {
                cap_rows.ACTION: n_actions,
                cap_rows.GROUP: n_groups,
                cap_rows.CHANNEL: n_channels,
                cap_rows.TOTAL: 1,
            }[scope]
            rows.append(
                cap_rows.CapRow(
                    scope,
                    int(rng.integers(0, target)),
                    int(rng.choice(events)),
                    float(rng.choice([DAY, 7 * DAY, 30 * DAY])),
                    int(rng.integers(1, 4)),
                    f"r{i}",
                )
            )
        caps = cap_rows.CapTable.build(rows)
        n = int(rng.integers(0, 30))
        history = _history(
            [
                (
                    NOW - float(rng.uniform(0, 40 * DAY)),
                    int(rng.choice(events)),
                    int(rng.integers(-1, n_actions)),
                    int(rng.integers(-1, n_channels)),
                )
                for _ in range(n)
            ]
        )
        expected = []
        for scope, target, event, window, _, _ in rows:
            count = 0
            for ts, ev, act, ch in zip(history.ts, history.event, history.action, history.channel, strict=True):
                of = {
                    cap_rows.ACTION: act,
                    cap_rows.GROUP: group_of[act] if act >= 0 else -1,
                    cap_rows.CHANNEL: ch,
                    cap_rows.TOTAL: 0,
                }
                count += int(ev == event and ts > NOW - window and of[scope] == target)
            expected.append(count)
        assert cp.counts(caps, history, NOW, group_of).tolist() == expected
