"""`nba evaluate`'s replay: on logs of a known random policy, the candidate's estimated value covers the
candidate's true value (known here because the simulated rewards are)."""

from __future__ import annotations

import numpy as np

from nba.decision.beliefs import beliefs_for
from nba.evaluation.replay import replay, report
from nba.learning.snapshot import build_snapshot
from nba.rules.rulebook import Rulebook

ELIGIBLE = ["broadband-bundle", "tv-addon", "loyalty-gift", "sim-only", "data-upgrade"]
TRUE_RATE = {"broadband-bundle": 0.30, "tv-addon": 0.05, "loyalty-gift": 0.20, "sim-only": 0.10, "data-upgrade": 0.02}


def _logs(n: int, seed: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    out: list[dict[str, object]] = []
    for i in range(n):
        a = ELIGIBLE[int(rng.integers(len(ELIGIBLE)))]
        reward = float(rng.random() < TRUE_RATE[a])
        out.append(
            {
                "decision_id": f"d{i}",
                "channel": "web",
                "segment_key": "other",
                "eligible": ELIGIBLE,
                "actions": [{"action_id": a, "probability": 1 / len(ELIGIBLE)}],
                "rewards": {a: reward} if reward else {},
            }
        )
    return out


def test_estimates_cover_the_true_value_of_the_candidate(rulebook: Rulebook) -> None:
    snap = build_snapshot(rulebook, None)
    idx = np.array([rulebook.action_index[a] for a in ELIGIBLE])
    key = len(rulebook.learning.keys) - 1
    beliefs = beliefs_for(snap, "thompson", 1.0, idx, key, None)
    theta = beliefs.sample(np.random.default_rng(99), 200_000) * rulebook.lever[idx]
    share = np.bincount(theta.argmax(axis=1), minlength=len(idx)) / theta.shape[0]
    truth = float(sum(s * TRUE_RATE[a] for s, a in zip(share, ELIGIBLE, strict=True)))

    out = report(replay(snap, _logs(4000, seed=5), np.random.default_rng(1), draws=512))
    assert out["decisions"] == 4000
    for name in ("ips", "snips", "doubly_robust"):
        est = out[name]
        assert est["low_95"] <= truth <= est["high_95"], (name, est, truth)
    assert 0 < out["effective_sample_size"] <= 4000


def test_records_it_cannot_use_are_counted_not_guessed(rulebook: Rulebook) -> None:
    snap = build_snapshot(rulebook, None)
    unusable: list[dict[str, object]] = [
        {"channel": "web", "actions": []},
        {"channel": "fax", "actions": [{}]},
        {"channel": "web", "arm": "control", "actions": [{}]},
    ]
    logs = [*_logs(3, seed=1), *unusable]
    out = replay(snap, logs, np.random.default_rng(1))
    assert out.p.shape[0] == 3
    assert dict(out.skipped) == {"no_action_shown": 1, "control_group": 1, "unknown_channel": 1}
