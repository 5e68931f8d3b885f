"""Offer performance for the steering board: the learner's hourly counters (store.PerfCell) over a period,
per action and channel and in total, with acceptance rates, their intervals and the lift of the model over
the control group. Pure: counters in, report out.

An acceptance rate is accepted / shown with a Wilson 95% interval: honest for the small counts of one
action in one hour (the normal approximation gives intervals below 0 there). An `accept` can arrive
without an `impression` (a channel that does not report impressions), so a rate can exceed 1; the
interval is then computed as if every shown one was accepted."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nba.domain import EVENT_TYPES, FloatArray, iso_utc
from nba.evaluation.estimators import Z95, lift
from nba.store.contract import PerfCell, RulesChange

HOUR = 3600
# the board's names for the event types it shows in columns (the others are in `events`)
COLUMNS = {"impression": "shown", "accept": "accepted", "reject": "rejected", "click": "clicked"}
SERIES = ("shown", "accepted", "rejected", "value")
ARMS = ("model", "control")


@dataclass(frozen=True, slots=True)
class Period:
    """Buckets [start_hour, end_hour) of `step` hours (1 or 24), epoch hours on UTC boundaries."""

    start_hour: int
    end_hour: int
    step: int
    channel: str | None = None

    @property
    def buckets(self) -> range:
        return range(self.start_hour, self.end_hour, self.step)


def wilson(accepted: FloatArray, shown: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The Wilson score 95% interval of accepted / shown, elementwise; NaN where nothing was shown."""
    n = np.asarray(shown, dtype=np.float64)
    k = np.minimum(np.asarray(accepted, dtype=np.float64), n)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        z2 = Z95 * Z95
        denominator = 1 + z2 / n
        centre = (p + z2 / (2 * n)) / denominator
        half = Z95 * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    low = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
    high = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return low, high


def report(
    cells: Mapping[PerfCell, float],
    period: Period,
    names: Mapping[str, str],
    changes: Iterable[RulesChange],
) -> dict[str, Any]:
    """The board's performance answer: `cells` as Storage.performance read them for `period`, `names` the
    current rules' action names (actions no longer in the rules keep their id as their name), `changes`
    the rule set changes to mark on the time axis."""
    buckets = period.buckets
    index = {hour: i for i, hour in enumerate(buckets)}
    measures = (*EVENT_TYPES, "value")
    # (action, channel) -> arm -> measure -> per-bucket amounts
    grid: dict[tuple[str, str], np.ndarray] = {}
    for cell, amount in cells.items():
        if period.channel is not None and cell.channel != period.channel:
            continue
        i = index.get(cell.hour - (cell.hour - period.start_hour) % period.step)
        if i is None or cell.measure not in measures:
            continue
        block = grid.get((cell.action_id, cell.channel))
        if block is None:
            block = grid[(cell.action_id, cell.channel)] = np.zeros((3, len(measures), len(buckets)))
        arm = ARMS.index(cell.arm) if cell.arm in ARMS else 2
        block[arm, measures.index(cell.measure), i] += amount
    rows = [
        {"action_id": action, "name": names.get(action, action), "channel": channel, **_summary(block, measures)}
        for (action, channel), block in grid.items()
    ]
    rows.sort(key=lambda r: (-r["value"], r["action_id"], r["channel"]))
    total = sum(grid.values(), np.zeros((3, len(measures), len(buckets))))
    start, end = period.start_hour * HOUR, period.end_hour * HOUR
    return {
        "from": iso_utc(start),
        "until": iso_utc(end),
        "bucket": "hour" if period.step == 1 else "day",
        "channel": period.channel,
        "buckets": [iso_utc(h * HOUR) for h in buckets],
        "rows": rows,
        "totals": _summary(total, measures),
        "rules_changes": [
            change_body(c) for c in sorted(changes, key=lambda c: c.at_ms) if start * 1000 <= c.at_ms < end * 1000
        ],
    }


def change_body(c: RulesChange) -> dict[str, Any]:
    """A change of the current rule set as the board's answers give it (performance, rule versions)."""
    return {"at": iso_utc(c.at_ms / 1000, "milliseconds"), "version": c.version, "kind": c.kind, "previous": c.previous}


def _summary(block: np.ndarray, measures: Sequence[str]) -> dict[str, Any]:
    """Totals, rates and series of one (action, channel) block, or of all of them: [arm, measure, bucket]."""
    every = block.sum(axis=0)  # over the arms
    sums = every.sum(axis=1)
    m = {name: i for i, name in enumerate(measures)}
    shown, accepted = sums[m["impression"]], sums[m["accept"]]
    out: dict[str, Any] = {COLUMNS.get(t, t): _number(sums[m[t]]) for t in COLUMNS}
    out["value"] = float(sums[m["value"]])
    out["events"] = {t: _number(sums[m[t]]) for t in EVENT_TYPES if sums[m[t]]}
    out.update(_rate(accepted, shown))
    series_shown, series_accepted = every[m["impression"]], every[m["accept"]]
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = series_accepted / series_shown
    out["series"] = {
        "shown": [_number(x) for x in series_shown],
        "accepted": [_number(x) for x in series_accepted],
        "rejected": [_number(x) for x in every[m["reject"]]],
        "value": [float(x) for x in every[m["value"]]],
        "rate": [None if math.isnan(x) or math.isinf(x) else float(x) for x in rate],
    }
    arms = {}
    for a, arm in enumerate(ARMS):
        n, k = block[a, m["impression"]].sum(), block[a, m["accept"]].sum()
        arms[arm] = {"shown": _number(n), "accepted": _number(k), **_rate(k, n)}
    out.update(arms)
    (n_m, k_m), (n_c, k_c) = ((block[a, m["impression"]].sum(), block[a, m["accept"]].sum()) for a in (0, 1))
    compared = lift((float(n_m), float(min(k_m, n_m))), (float(n_c), float(min(k_c, n_c))))
    relative = compared.get("relative")
    bounds = compared.get("relative_95")
    out["lift"] = relative
    out["lift_low"], out["lift_high"] = bounds if isinstance(bounds, list) else (None, None)
    return out


def _rate(accepted: float, shown: float) -> dict[str, float | None]:
    if shown <= 0:
        return {"rate": None, "rate_low": None, "rate_high": None}
    low, high = wilson(np.array([accepted]), np.array([shown]))
    return {"rate": float(accepted / shown), "rate_low": float(low[0]), "rate_high": float(high[0])}


def _number(x: float) -> int | float:
    """Counts are whole numbers (the counters are floats in Redis, added in whole steps)."""
    return int(x) if float(x).is_integer() else float(x)
