"""`nba evaluate`: how would a candidate configuration have done on the logged decisions?

The candidate is a rules directory (levers, model per channel, exploration, priors) and a model
(the priors alone, or the statistics in Redis now). For every logged decision it recomputes, over the
actions that were eligible then, the chance that the candidate would have put the logged first action
first (Monte-Carlo over its own Thompson draws, like decide does) and what it expects to earn; the
estimators of nba.evaluation turn those and the logged probabilities and rewards into IPS, SNIPS and
doubly robust estimates of the candidate's reward per decision, with 95% intervals and the effective
sample size. The customer is seen as the decision saw it (segment key and features are logged);
contact policy is not replayed, because the logged eligible set already went through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nba.decision.arbitration import contenders
from nba.decision.beliefs import beliefs_for
from nba.domain import FloatArray
from nba.evaluation.estimators import Estimate, doubly_robust, effective_sample_size, ips, snips
from nba.learning.features import unpack
from nba.learning.snapshot import Snapshot


@dataclass(frozen=True)
class Replay:
    """Per usable logged decision: the logged first action's probability under the logging policy (p)
    and the candidate (pi), its reward, and the candidate's reward model (q) for it and in expectation."""

    p: FloatArray
    pi: FloatArray
    reward: FloatArray
    q_logged: FloatArray
    q_expected: FloatArray
    skipped: Mapping[str, int]


def replay(snap: Snapshot, records: Iterable[Mapping[str, Any]], rng: np.random.Generator, draws: int = 512) -> Replay:
    rb = snap.rulebook
    keys = {k: i for i, k in enumerate(rb.learning.keys)}
    cols: dict[str, list[float]] = {"p": [], "pi": [], "r": [], "ql": [], "qe": []}
    skipped = {"no_action_shown": 0, "control_group": 0, "unknown_channel": 0}
    for rec in records:
        actions = rec.get("actions") or []
        if not actions:
            skipped["no_action_shown"] += 1
            continue
        if rec.get("arm") == "control":  # a different logging policy: its probabilities are exact too, but
            skipped["control_group"] += 1  # keep the estimate about what the model arm logged
            continue
        if rec.get("channel") not in rb.channel_index:
            skipped["unknown_channel"] += 1
            continue
        first = actions[0]
        eligible = np.array([rb.action_index[a] for a in rec.get("eligible", []) if a in rb.action_index], np.int64)
        logged = rb.action_index.get(first["action_id"], -1)
        cl = rb.learning.for_channel(rec["channel"])
        space = rb.learning.features
        x = (
            unpack(rec.get("features", ""), space.dim)
            if space.features and rec.get("feature_signature") == space.signature
            else None
        )
        key = keys.get(rec.get("segment_key", ""), len(rb.learning.keys) - 1)
        pi, q_logged, q_expected = 0.0, 0.0, 0.0
        if eligible.shape[0]:
            # the candidate policy's own preselection of contenders (arbitration.contenders) for its first
            # place: the same cap as a live decision with a limit up to 4
            beliefs = beliefs_for(snap, cl.model, cl.exploration, eligible, key, x)
            keep = contenders(eligible, rb.lever, beliefs, rb.no_action, 1)
            eligible, beliefs = eligible[keep], beliefs.take(keep)
            theta = beliefs.sample(rng, draws) if cl.exploration > 0 else beliefs.mean[None, :]
            fixed = rb.no_action[eligible]
            theta[:, fixed] = 1.0
            winner = np.argmax(theta * rb.lever[eligible], axis=1)
            share = np.bincount(winner, minlength=eligible.shape[0]) / winner.shape[0]
            q = np.where(fixed, 0.0, beliefs.mean)  # doing nothing earns nothing
            q_expected = float((share * q).sum())
            where = np.flatnonzero(eligible == logged)
            if where.shape[0]:
                pi, q_logged = float(share[where[0]]), float(q[where[0]])
        cols["p"].append(float(first["probability"]))
        cols["pi"].append(pi)
        cols["r"].append(float((rec.get("rewards") or {}).get(first["action_id"], 0.0)))
        cols["ql"].append(q_logged)
        cols["qe"].append(q_expected)
    arr = {k: np.array(v) for k, v in cols.items()}
    return Replay(arr["p"], arr["pi"], arr["r"], arr["ql"], arr["qe"], skipped)


def report(r: Replay) -> dict[str, Any]:
    def est(e: Estimate) -> dict[str, float]:
        return {"value": e.value, "low_95": e.low, "high_95": e.high}

    if r.p.shape[0] == 0:
        return {"decisions": 0, "skipped": dict(r.skipped)}
    return {
        "decisions": int(r.p.shape[0]),
        "skipped": dict(r.skipped),
        "logged_reward": float(r.reward.mean()),
        "ips": est(ips(r.p, r.pi, r.reward)),
        "snips": est(snips(r.p, r.pi, r.reward)) if r.pi.sum() > 0 else None,
        "doubly_robust": est(doubly_robust(r.p, r.pi, r.reward, r.q_logged, r.q_expected)),
        "effective_sample_size": effective_sample_size(r.p, r.pi),
    }
