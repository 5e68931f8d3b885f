"""The board's performance report from counters: pure, so checked with hand-made counters."""

from __future__ import annotations

import numpy as np
import pytest

from nba.evaluation.performance import Period, report, wilson
from nba.store.contract import PerfCell, RulesChange

DAY0 = 491_000 // 24 * 24  # an epoch hour at 00:00 UTC


def test_wilson_matches_the_textbook_values() -> None:
    low, high = wilson(np.array([0.0, 5.0, 10.0, 3.0]), np.array([10.0, 10.0, 10.0, 0.0]))
    assert low[0] == 0.0
    assert high[0] == pytest.approx(0.2775, abs=1e-4)
    assert (low[1], high[1]) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert low[2] == pytest.approx(0.7225, abs=1e-4)
    assert high[2] == pytest.approx(1.0)
    assert np.isnan(low[3])
    assert np.isnan(high[3])


def _cells() -> dict[PerfCell, float]:
    return {
        PerfCell(DAY0, "a", "web", "model", "impression"): 80,
        PerfCell(DAY0, "a", "web", "model", "accept"): 8,
        PerfCell(DAY0, "a", "web", "model", "value"): 8 * 25.0,
        PerfCell(DAY0 + 1, "a", "web", "control", "impression"): 20,
        PerfCell(DAY0 + 1, "a", "web", "control", "accept"): 1,
        PerfCell(DAY0 + 1, "a", "web", "control", "value"): 25.0,
        PerfCell(DAY0 + 2, "b", "app", "none", "impression"): 5,
        PerfCell(DAY0 + 2, "b", "app", "none", "interest"): 2,
        PerfCell(DAY0 + 30, "a", "web", "model", "impression"): 7,  # the next day
        PerfCell(DAY0 + 3, "a", "web", "model", "later"): 1,
    }


def test_rows_and_totals_by_hour() -> None:
    change = RulesChange((DAY0 + 1) * 3600 * 1000 + 5, "v2", "publish", "v1")
    outside = RulesChange((DAY0 - 5) * 3600 * 1000, "v1", "publish", None)
    body = report(_cells(), Period(DAY0, DAY0 + 24, 1), {"a": "Offer A"}, [change, outside])
    assert len(body["buckets"]) == 24
    assert [(r["action_id"], r["channel"]) for r in body["rows"]] == [("a", "web"), ("b", "app")]
    a = body["rows"][0]
    assert a["name"] == "Offer A"
    assert body["rows"][1]["name"] == "b"  # an action no longer in the rules keeps its id
    assert (a["shown"], a["accepted"], a["value"]) == (100, 9, 225.0)
    assert a["events"] == {"impression": 100, "accept": 9, "later": 1}
    assert a["rate"] == pytest.approx(0.09)
    assert a["rate_low"] < 0.09 < a["rate_high"]
    assert a["series"]["shown"][:3] == [80, 20, 0]
    assert a["series"]["rate"][:3] == [pytest.approx(0.1), pytest.approx(0.05), None]
    assert (a["model"]["rate"], a["control"]["rate"]) == (pytest.approx(0.1), pytest.approx(0.05))
    assert a["lift"] == pytest.approx(1.0)
    assert a["lift_low"] < 1.0 < a["lift_high"]
    assert body["totals"]["shown"] == 105
    assert body["totals"]["events"]["interest"] == 2
    assert [c["version"] for c in body["rules_changes"]] == ["v2"]


def test_days_sum_their_hours_and_a_channel_filters() -> None:
    body = report(_cells(), Period(DAY0, DAY0 + 48, 24), {}, [])
    assert body["bucket"] == "day"
    assert body["rows"][0]["series"]["shown"] == [100, 7]
    only_app = report(_cells(), Period(DAY0, DAY0 + 48, 24, "app"), {}, [])
    assert [r["channel"] for r in only_app["rows"]] == ["app"]
    assert only_app["totals"]["shown"] == 5


def test_an_accept_without_impressions_keeps_its_interval_within_0_and_1() -> None:
    cells = {PerfCell(DAY0, "a", "email", "model", "impression"): 2, PerfCell(DAY0, "a", "email", "model", "accept"): 3}
    row = report(cells, Period(DAY0, DAY0 + 1, 1), {}, [])["rows"][0]
    assert row["rate"] == 1.5
    assert 0 <= row["rate_low"] <= row["rate_high"] == pytest.approx(1.0)
