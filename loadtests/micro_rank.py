"""Micro-benchmark: server-side compute of one decision (the pure `rank` stage, no I/O, no HTTP),
for the shipped rules and for generated rule sets of 10 and 1,000 actions, each with a cold model (priors
only: the widest posteriors, the most contenders) and a trained one (every action shown 200-5,000 times
per segment key, accepted 1-10% of the time). Each is measured as the server decides (one `Situations`
shared by all decisions, as in `Decider`) and with every decision integrating its own placement
probabilities (no cache). The
3,000 decisions go to 2,000 demo customers with five recent impressions each (of different actions),
so eligible sets and caps vary as they do in traffic.

    python -m loadtests.micro_rank
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from loadtests.gen_rules import generate
from nba.customers.demo import demo_population
from nba.decision import segments
from nba.decision.arbitration import Situations
from nba.decision.rank import How, rank
from nba.domain import DecideRequest
from nba.learning.snapshot import build_snapshot
from nba.rules.load import load_rulebook
from nba.rules.rulebook import Rulebook
from nba.store.contract import CustomerSnapshot, ModelData
from nba.store.history import pack

ROOT = Path(__file__).resolve().parent.parent


def trained(rb: Rulebook, seed: int = 1) -> ModelData:
    rng = np.random.default_rng(seed)
    counts = {}
    for a in rb.actions:
        for key in rb.learning.keys:
            trials = float(rng.integers(200, 5000))
            counts[(a.id, key)] = (trials, trials * float(rng.uniform(0.01, 0.10)))
    return ModelData("trained", counts, {}, "", {})


def bench(
    rb: Rulebook,
    n: int = 3000,
    history: int = 5,
    data: ModelData | None = None,
    situations: Situations | None = None,
    population: int = 2000,
) -> tuple[float, float]:
    rng = np.random.default_rng(1)
    snap = build_snapshot(rb, data)
    now = time.time()
    ids = [a.id for a in rb.actions]
    customers = []
    for k, (_, attrs) in enumerate(demo_population(population)):
        hist = pack(
            (int(now * 1000) - j * 3_600_000, "impression", ids[(k + j) % len(ids)], "web", f"e{j}")
            for j in range(history)
        )
        customers.append(CustomerSnapshot(attrs, segments.materialise(rb, attrs, now), rb.segments_version, hist))
    req = DecideRequest("c-1", "web", {"device": "mobile"}, 3, False, None)
    for c in customers:
        rank(snap, c, req, now, "d", How(rng, situations=situations))
    times = np.empty(n)
    for i in range(n):
        t = time.perf_counter()
        rank(snap, customers[i % len(customers)], req, now, "d", How(rng, situations=situations))
        times[i] = time.perf_counter() - t
    return float(np.median(times) * 1e6), float(np.percentile(times, 99) * 1e6)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sets = {"shipped (15)": load_rulebook(ROOT / "rules")}
        for n in (10, 1000):
            sets[f"generated {n}"] = load_rulebook(generate(Path(tmp) / f"r{n}", n, seed=1))
        print(f"{'rule set':16} {'model':8} {'median us':>10} {'p99 us':>10} {'no cache: median':>17} {'p99':>8}")
        for name, rb in sets.items():
            for model, data in (("cold", None), ("trained", trained(rb))):
                med, p99 = bench(rb, data=data, situations=Situations())
                alone, alone_p99 = bench(rb, data=data)
                print(f"{name:16} {model:8} {med:10.1f} {p99:10.1f} {alone:17.1f} {alone_p99:8.1f}")


if __name__ == "__main__":
    main()
