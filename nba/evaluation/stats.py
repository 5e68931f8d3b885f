"""What the model has learned, per action and segment key, and how the model ranks against the control
group: the answer of GET /v1/actions/stats (pure: statistics in, report out)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nba.evaluation.estimators import lift
from nba.learning import forgetting
from nba.learning.bandit import cells, interval, posterior
from nba.rules.rulebook import Rulebook
from nba.store.contract import ModelData


def report(rb: Rulebook, data: ModelData, counts: Mapping[tuple[str, str], int], now: float) -> dict[str, Any]:
    """Per action: the events received by type and, per segment key, trials, rewards, the posterior mean
    and its 95% interval, as the model holds them at `now` (with `learning.half_life`, old answers count
    less: trials and rewards are then what they are still worth). `control` compares the reward rates of
    model-ranked and control-group decisions (the lift), never forgotten."""
    # alpha and beta only: a ModelState would also tabulate every posterior for sampling
    trials, rewards = cells([a.id for a in rb.actions], rb.learning.keys, forgetting.at(data, now).counts)
    alpha, beta = posterior(rb.prior_alpha, rb.prior_beta, trials, rewards)
    mean = alpha / (alpha + beta)
    low, high = interval(alpha, beta)
    actions = [
        {
            "action_id": a.id,
            "group": a.group,
            "events": {etype: n for (aid, etype), n in sorted(counts.items()) if aid == a.id},
            "segments": [
                {
                    "segment_key": key,
                    "trials": float(trials[i, j]),
                    "rewards": float(rewards[i, j]),
                    "mean": float(mean[i, j]),
                    "interval_95": [float(low[i, j]), float(high[i, j])],
                }
                for j, key in enumerate(rb.learning.keys)
            ],
        }
        for i, a in enumerate(rb.actions)
    ]
    control = rb.learning.control
    arms = arms_body(data.arms)
    comparison: dict[str, Any] = {
        "share": control.share if control else 0.0,
        "ordering": control.ordering if control else None,
        "arms": arms,
    }
    if "model" in data.arms and "control" in data.arms:
        comparison["lift"] = lift(data.arms["model"], data.arms["control"])
    return {
        "model_version": data.version,
        "rules_version": rb.version,
        "half_life_seconds": data.half_life or None,
        "actions": actions,
        "control": comparison,
    }


def arms_body(arms: Mapping[str, tuple[float, float]]) -> dict[str, dict[str, float | None]]:
    """Model and control (and any other arm): shown, rewards and their rate, as the model counts them."""
    return {arm: {"shown": n, "rewards": r, "rate": r / n if n else None} for arm, (n, r) in sorted(arms.items())}
