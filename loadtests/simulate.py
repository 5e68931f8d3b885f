"""Closed-loop learning simulator: does nba's learning beat fixed rules, and by how much?

A synthetic population has a hidden response model: customer c accepts action a with probability
sigmoid(theta_a . x_c), where x_c are the customer's features (plan, data use, tenure, products, device
of the visit) and each action appeals to a few of them. The real `nba serve` (its own redis-server,
generated rules) is driven over HTTP: decide (limit 1) -> the simulated customer answers -> impression
and accept/reject events. Each decision and its answer are two events.

Policies on the same stream of visits (same customers, same devices, same order):
- oracle: knows the truth, shows the best action (the ceiling);
- random: a uniformly random action (what no learning earns);
- segment: nba, per-segment Thompson sampling (`model: thompson`, keyed by plan tier);
- contextual: nba, contextual Bayesian linear Thompson sampling over the declared features;
- vw: Vowpal Wabbit `--cb_explore_adf` in-process, fed the same features (a peer, not over HTTP).
Reward is counted as the *expected* reward of what was shown (the true acceptance probability), which
has far less noise than the sampled accepts that the learners see; both are reported.

    pip install -e .[sim]      # vowpalwabbit, matplotlib
    python -m loadtests.simulate --decisions 25000 --out loadtests/results/simulation.png
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from loadtests.procs import proc_cpu
from loadtests.sim_server import learning_server, put_profiles
from nba.learning.features import encode
from nba.rules.features import FeatureSpace
from nba.rules.load import load_rulebook

PLANS = ["basic", "medium", "large", "unlimited"]
PRODUCTS = ["mobile", "broadband", "tv"]
DEVICES = ["mobile", "desktop"]
FEATURES = [
    {"attribute": "plan", "one_hot": PLANS},
    {"attribute": "usage_gb", "buckets": [5, 20, 50]},
    {"attribute": "tenure_months", "buckets": [12, 36]},
    {"attribute": "products", "one_hot": PRODUCTS},
    {"context": "device", "one_hot": DEVICES},
]


def write_rules(out: Path, n_actions: int, model: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "actions").mkdir(exist_ok=True)
    (out / "channels.yaml").write_text(
        yaml.safe_dump({"channels": {"web": {"direction": "inbound", "default_limit": 1, "max_limit": 3}}})
    )
    (out / "profile.yaml").write_text(
        yaml.safe_dump(
            {
                "attributes": {
                    "plan": {"type": "string"},
                    "usage_gb": {"type": "number"},
                    "tenure_months": {"type": "integer"},
                    "products": {"type": "list", "values": PRODUCTS},
                }
            }
        )
    )
    (out / "segments.yaml").write_text(
        yaml.safe_dump(
            {
                "segments": {
                    "premium": {"when": {"field": "plan", "in": ["large", "unlimited"]}},
                    "standard": {"when": {"field": "plan", "eq": "medium"}},
                }
            }
        )
    )
    (out / "policy.yaml").write_text(
        yaml.safe_dump(
            {
                "groups": {"sales": {"weight": 1.0}, "service": {"weight": 1.0}},
                "learning": {
                    "model": model,
                    "segment_key": ["premium", "standard"],
                    "prior": {"alpha": 1, "beta": 19},
                    "rewards": {"accept": 1.0},
                    "refresh_seconds": 0.5,
                    "contextual": {"features": FEATURES},
                },
            },
            sort_keys=False,
        )
    )
    for i in range(n_actions):
        (out / "actions" / f"offer-{i}.yaml").write_text(
            yaml.safe_dump(
                {
                    "id": f"offer-{i}",
                    "group": "sales" if i % 2 == 0 else "service",
                    "channels": ["web"],
                    "value": 1,
                    "content": {"headline": f"Offer {i}"},
                }
            )
        )
    return out


@dataclass
class World:
    """The hidden truth: customers, their features, and the acceptance probability of every action."""

    profiles: list[dict[str, object]]
    devices: np.ndarray  # per visit
    visitors: np.ndarray  # customer index per visit
    x: np.ndarray  # (visits, d) features of each visit
    p: np.ndarray  # (visits, actions) true acceptance probability
    space: FeatureSpace

    @staticmethod
    def make(n_customers: int, n_actions: int, visits: int, seed: int, space: FeatureSpace) -> World:
        rng = np.random.default_rng(seed)
        profiles: list[dict[str, object]] = []
        for _ in range(n_customers):
            plan = PLANS[int(rng.choice(4, p=[0.35, 0.3, 0.2, 0.15]))]
            profiles.append(
                {
                    "plan": plan,
                    "usage_gb": round(float(rng.lognormal(2.3, 1.0)), 1),
                    "tenure_months": int(rng.integers(0, 120)),
                    "products": [p for p in PRODUCTS if rng.random() < (0.8 if p == "mobile" else 0.35)],
                }
            )
        d = space.dim
        theta = np.zeros((n_actions, d))
        theta[:, 0] = rng.normal(-3.6, 0.3, n_actions)  # baselines around 3%
        for a in range(n_actions):  # each action appeals to two or three kinds of customer
            cols = rng.choice(np.arange(1, d), size=int(rng.integers(2, 4)), replace=False)
            theta[a, cols] = rng.uniform(0.8, 1.8, cols.shape[0])
        visitors = rng.integers(0, n_customers, visits)
        devices = rng.choice(2, visits, p=[0.6, 0.4])
        x = np.array(
            [
                encode(space, profiles[c], {"device": DEVICES[dv]}, set())
                for c, dv in zip(visitors.tolist(), devices.tolist(), strict=True)
            ]
        )
        p = 1.0 / (1.0 + np.exp(-(x @ theta.T)))
        return World(profiles, devices, visitors, x, p, space)


@dataclass
class Run:
    name: str
    expected: np.ndarray  # per visit: true acceptance probability of what was shown
    accepted: np.ndarray  # per visit: sampled answer
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # of the server process (nba runs) or this process (vw)
    notes: dict[str, object] = field(default_factory=dict)


def offline(name: str, world: World, choose: Callable[[int], int], seed: int) -> Run:
    rng = np.random.default_rng(seed + 1)
    n = world.p.shape[0]
    chosen = np.array([choose(i) for i in range(n)])
    exp = world.p[np.arange(n), chosen]
    return Run(name, exp, rng.random(n) < exp)


def vw_run(world: World, seed: int, args: str) -> Run:
    import vowpalwabbit

    vw = vowpalwabbit.Workspace(f"--cb_explore_adf --quiet -q ca --random_seed {seed} {args}")
    names = world.space.column_names()
    rng = np.random.default_rng(seed + 2)
    n, k = world.p.shape
    shown = np.zeros(n, np.int64)
    accepted = np.zeros(n, bool)
    actions = [f"|a id=offer{a}" for a in range(k)]
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        nz = np.flatnonzero(world.x[i])
        shared = "shared |c " + " ".join(
            names[j]
            .replace(":", "_")
            .replace("=", "_")
            .replace(" ", "_")
            .replace("[", "_")
            .replace(",", "_")
            .replace(")", "_")
            for j in nz
        )
        pmf = vw.predict([shared, *actions])
        probs = np.asarray(pmf, float)
        a = int(rng.choice(k, p=probs / probs.sum()))
        shown[i] = a
        accepted[i] = rng.random() < world.p[i, a]
        lines = [shared] + [
            f"0:{-float(accepted[i])}:{probs[j]} {actions[j]}" if j == a else actions[j] for j in range(k)
        ]
        vw.learn(lines)
    run = Run(
        f"vw {args}".strip(),
        world.p[np.arange(n), shown],
        accepted,
        time.perf_counter() - start,
        time.process_time() - cpu,
    )
    vw.finish()
    return run


async def nba_run(name: str, world: World, rules: Path, workers: int, seed: int, workdir: Path) -> Run:
    n = world.p.shape[0]
    shown = np.zeros(n, np.int64)
    accepted = np.zeros(n, bool)
    rng = np.random.default_rng(seed + 3)
    answers = np.asarray(rng.random(n))
    async with learning_server(workdir, name, rules, workers * 2) as server:
        http, base = server.http, server.base
        await put_profiles(server, {f"sim-{i}": p for i, p in enumerate(world.profiles)})
        cpu0, start = proc_cpu([server.process.pid]), time.perf_counter()
        next_visit = 0
        degraded, retries = [0], [0]

        async def worker() -> None:
            nonlocal next_visit
            while next_visit < n:
                i = next_visit
                next_visit += 1
                if i % 5000 == 0:
                    print(f"  {name}: {i} decisions, {time.perf_counter() - start:.0f} s", flush=True)
                cid = f"sim-{world.visitors[i]}"
                body = {
                    "customer_id": cid,
                    "channel": "web",
                    "limit": 1,
                    "context": {"device": DEVICES[world.devices[i]]},
                }
                async with http.post(f"{base}/v1/decide", json=body) as r:
                    d = await r.json()
                    assert r.status == 200, d
                degraded[0] += bool(d.get("degraded"))
                a = int(d["actions"][0]["action_id"].split("-")[1])
                shown[i] = a
                accepted[i] = answers[i] < world.p[i, a]
                events = [
                    {
                        "event_id": f"{i}-i",
                        "type": "impression",
                        "customer_id": cid,
                        "action_id": d["actions"][0]["action_id"],
                        "decision_id": d["decision_id"],
                        "channel": "web",
                    },
                    {
                        "event_id": f"{i}-a",
                        "type": "accept" if accepted[i] else "reject",
                        "customer_id": cid,
                        "action_id": d["actions"][0]["action_id"],
                        "decision_id": d["decision_id"],
                        "channel": "web",
                    },
                ]
                for attempt in range(20):  # a channel retries a 503 (same event ids: applied once)
                    async with http.post(f"{base}/v1/events", json={"events": events}) as r:
                        if r.status == 202:
                            break
                        assert r.status == 503, await r.text()
                        retries[0] += 1
                    await asyncio.sleep(0.05 * (attempt + 1))

        await asyncio.gather(*(worker() for _ in range(workers)))
        seconds = time.perf_counter() - start
        cpu = proc_cpu([server.process.pid]) - cpu0
        async with http.get(f"{base}/metrics") as r:
            metrics = await r.text()
    lag = [line for line in metrics.splitlines() if line.startswith("nba_learner_lag_seconds")]
    return Run(
        name,
        world.p[np.arange(n), shown],
        accepted,
        seconds,
        cpu,
        {"learner_lag": lag, "degraded_decisions": degraded[0], "event_retries": retries[0]},
    )


def plot(runs: list[Run], path: Path, events_per_decision: int = 2) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for run in runs:
        n = run.expected.shape[0]
        ax.plot(np.arange(1, n + 1) * events_per_decision, np.cumsum(run.expected), label=run.name)
    ax.set_xlabel("events (a decision and its answer are two)")
    ax.set_ylabel("cumulative expected accepts")
    ax.set_title("nba closed-loop simulation: cumulative reward")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


async def main_async(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="nba-sim-"))
    rules = {m: write_rules(tmp / f"rules-{m}", args.actions, m) for m in ("thompson", "contextual")}
    space = load_rulebook(rules["contextual"]).learning.features
    world = World.make(args.customers, args.actions, args.decisions, args.seed, space)
    rng = np.random.default_rng(args.seed + 4)
    runs = [
        offline("oracle", world, lambda i: int(np.argmax(world.p[i])), args.seed),
        offline("random", world, lambda i: int(rng.integers(args.actions)), args.seed),
    ]
    tail = slice(int(0.8 * args.decisions), None)
    report: list[dict[str, object]] = []

    def add(r: Run) -> None:
        """Print each policy's row as soon as it has run: a long simulation must not lose finished results."""
        runs.append(r)
        oracle = runs[0]
        share = r.expected.sum() / oracle.expected.sum()
        late = r.expected[tail].sum() / oracle.expected[tail].sum()
        wall = r.seconds / args.decisions * 1e6
        cpu = r.cpu_seconds / args.decisions * 1e6
        print(
            f"{r.name:34} {r.expected.sum():9.1f} {100 * share:8.1f}% {int(r.accepted.sum()):8d} "
            f"{100 * late:11.1f}% {wall:11.0f} {cpu:10.0f}  {r.notes or ''}",
            flush=True,
        )
        report.append(
            {
                "policy": r.name,
                "expected_reward": float(r.expected.sum()),
                "share_of_oracle": share,
                "share_of_oracle_last_20pct": late,
                "accepts": int(r.accepted.sum()),
                "wall_us_per_decision": wall,
                "cpu_us_per_decision": cpu,
                **r.notes,
            }
        )
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))

    print(
        f"{args.decisions} decisions ({2 * args.decisions} events), {args.actions} actions, "
        f"{args.customers} customers, seed {args.seed}"
    )
    print(
        f"{'policy':34} {'expected':>9} {'% oracle':>9} {'accepts':>8} {'last 20% %or':>12} "
        f"{'wall us/dec':>11} {'cpu us/dec':>10}"
    )
    first, runs = runs, []
    for r in first:
        add(r)
    for vw_args in args.vw:
        add(vw_run(world, args.seed, vw_args))
    if not args.skip_nba:
        add(await nba_run("nba segment", world, rules["thompson"], args.workers, args.seed, tmp))
        add(await nba_run("nba contextual", world, rules["contextual"], args.workers, args.seed, tmp))
    if args.out:
        plot(runs, args.out)
        print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=25_000)
    parser.add_argument("--actions", type=int, default=10)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=8, help="concurrent channel sessions against nba")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--vw",
        nargs="*",
        default=["", "--squarecb"],
        help="Vowpal Wabbit exploration arguments to compare (one run each)",
    )
    parser.add_argument("--skip-nba", action="store_true", help="only the offline policies and VW")
    parser.add_argument(
        "--out",
        type=lambda v: Path(v) if v else None,
        default=Path("loadtests/results/simulation.png"),
        help="PNG of the reward curves (a JSON report beside it); '' for neither",
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
