"""A simulated world for offline evaluation, where every candidate's true value is known.

Customers of the shipped rules' segment keys visit the web with an eligible set drawn from a fixed
population of situations; nba's own policy (per-segment Thompson sampling from a trained model, limit 3)
decides, and each shown action is accepted with a probability that depends on the action, the segment
key and the rank (position-based). The logs are nba decision records. Candidates differ from the
logging policy: always the mean (deterministic), beliefs three times as confident, other levers. A
candidate's true reward per decision is integrated exactly over the population of situations.

    python -m loadtests.offline_world --seeds 40 --records 4000    # coverage of nba evaluate's intervals
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nba.decision.arbitration import Sampling, Situation, arbitrate
from nba.decision.beliefs import beliefs_for
from nba.decision.placement import placements
from nba.evaluation.candidate import Configured
from nba.evaluation.logs import read_logs
from nba.evaluation.replay import replay, report
from nba.learning.snapshot import Snapshot, build_snapshot
from nba.rules.learning_settings import ChannelLearning
from nba.rules.load import load_rulebook
from nba.rules.rulebook import Rulebook
from nba.store.contract import ModelData

ROOT = Path(__file__).resolve().parent.parent
POSITION = np.array([1.0, 0.7, 0.5])  # what rank 1, 2, 3 do to an action's appeal
LIMIT = 3
CHANNEL = "web"


@dataclasses.dataclass(frozen=True)
class World:
    rb: Rulebook
    pool: np.ndarray  # action indices that can be offered on the web
    rate: np.ndarray  # (actions, keys): acceptance at rank 1
    situations: list[tuple[int, np.ndarray]]  # (segment key, eligible action indices)
    counts: dict[tuple[str, str], tuple[float, float]]  # what the logging model learned: (trials, accepts)
    logging: Snapshot


def make_world(seed: int, situations: int = 200) -> World:
    rng = np.random.default_rng(seed)
    rb = load_rulebook(ROOT / "rules")
    ch = rb.channel_index[CHANNEL]
    pool = np.flatnonzero(rb.channel_ok[:, ch] & ~rb.no_action)
    keys = len(rb.learning.keys)
    rate = rng.uniform(0.02, 0.25, (len(rb.actions), keys))
    seen = []
    for _ in range(situations):
        size = int(rng.integers(LIMIT + 2, min(len(pool), 9) + 1))
        seen.append((int(rng.integers(keys)), np.sort(rng.choice(pool, size, replace=False))))
    counts: dict[tuple[str, str], tuple[float, float]] = {}
    for a in pool:
        for k, key in enumerate(rb.learning.keys):
            trials = float(rng.integers(100, 1500))
            counts[(rb.actions[a].id, key)] = (trials, float(rng.binomial(int(trials), rate[a, k])))
    logging = build_snapshot(rb, ModelData("logging", counts, {}, "", {}))
    return World(rb, pool, rate, seen, counts, logging)


def logs(world: World, n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rb, snap = world.rb, world.logging
    cl = rb.learning.for_channel(CHANNEL)
    out = []
    for i in range(n):
        key, eligible = world.situations[int(rng.integers(len(world.situations)))]
        beliefs = beliefs_for(snap, cl.model, cl.exploration, eligible, key, None)
        r = arbitrate(eligible, beliefs, rb.lever, rb.no_action, LIMIT, Sampling(rng))
        accepted = {}
        for rank, a in enumerate(r.actions.tolist()):
            if rng.random() < world.rate[a, key] * POSITION[rank]:
                accepted[rb.actions[a].id] = 1.0
        name = rb.learning.keys[key]
        out.append(
            {
                "decision_id": f"d-{seed}-{i}",
                "channel": CHANNEL,
                "arm": "model",
                "segment_key": name,
                "segments": [] if name == "other" else [name],
                "eligible": rb.action_ids[eligible].tolist(),
                "showable": rb.action_ids[r.contenders].tolist(),
                "actions": [
                    {"action_id": rb.actions[a].id, "rank": rank + 1, "probability": float(p)}
                    for rank, (a, p) in enumerate(zip(r.actions.tolist(), r.probability.tolist(), strict=True))
                ],
                "rewards": accepted,
                "probability_kind": "integrated",
            }
        )
    return out


def true_value(world: World, snap: Snapshot) -> float:
    """The candidate's expected reward per decision over ranks 1..LIMIT, averaged over the situations."""
    rb = snap.rulebook
    cl = rb.learning.for_channel(CHANNEL)
    total = 0.0
    for key, eligible in world.situations:
        beliefs = beliefs_for(snap, cl.model, cl.exploration, eligible, key, None)
        s = Situation(eligible, beliefs, rb.lever, rb.no_action, LIMIT)
        p = placements(s.beliefs, s.lever, s.threshold, np.arange(s.contenders.shape[0]), LIMIT)
        total += float((p * world.rate[s.contenders, key][:, None] * POSITION[None, :LIMIT]).sum())
    return total / len(world.situations)


def candidates(world: World) -> dict[str, Snapshot]:
    """Policies that differ from the logging one: always the mean, beliefs three times as confident, and
    levers (value x weight) scaled by 0.5-2."""
    rb = world.rb
    learning = rb.learning
    greedy_channels: Mapping[str, ChannelLearning] = {
        ch: dataclasses.replace(cl, exploration=0.0) for ch, cl in learning.channels.items()
    }
    greedy = dataclasses.replace(rb, learning=dataclasses.replace(learning, channels=greedy_channels))
    tripled = {cell: (3 * n, 3 * r) for cell, (n, r) in world.counts.items()}
    rng = np.random.default_rng(99)
    levers = dataclasses.replace(rb, lever=rb.lever * rng.uniform(0.5, 2.0, rb.lever.shape[0]))
    return {
        "deterministic": build_snapshot(greedy, ModelData("greedy", world.counts, {}, "", {})),
        "tripled beliefs": build_snapshot(rb, ModelData("tripled", tripled, {}, "", {})),
        "other levers": build_snapshot(levers, ModelData("levers", world.counts, {}, "", {})),
    }


def coverage(seeds: range, records: int) -> dict[str, dict[str, int]]:
    """Per candidate and estimator: cases whose 95% interval holds the true value, cases refused for
    overlap, and cases missed."""
    out: dict[str, dict[str, int]] = {}
    for seed in seeds:
        world = make_world(seed)
        logged, _ = read_logs(logs(world, records, seed))
        for name, snap in candidates(world).items():
            truth = true_value(world, snap)
            rep = report(replay(logged, Configured(snap, name)))
            for est in ("ips", "snips", "doubly_robust"):
                tally = out.setdefault(f"{name}/{est}", {"covered": 0, "refused": 0, "missed": 0})
                if rep["refused"]:
                    tally["refused"] += 1
                elif rep[est]["low_95"] <= truth <= rep[est]["high_95"]:
                    tally["covered"] += 1
                else:
                    tally["missed"] += 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--records", type=int, default=4000)
    args = parser.parse_args()
    result = coverage(range(args.seeds), args.records)
    print(f"{'candidate / estimator':36} {'covered':>8} {'refused':>8} {'missed':>7}")
    for name, t in result.items():
        print(f"{name:36} {t['covered']:>8} {t['refused']:>8} {t['missed']:>7}")


if __name__ == "__main__":
    main()
