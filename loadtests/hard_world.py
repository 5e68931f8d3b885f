"""A harder closed-loop learning benchmark than simulate.py: many actions, eligibility, interactions,
niche offers, a drift halfway, and answers that arrive late, on another channel, or without their
decision id.

The world (every parameter drawn from the seed, nothing tuned per seed):
- `--actions` offers (default 40), all on the `web` channel. Customers carry a `tier` (5 values); each
  action's `eligible_when` excludes a random ~20% of tiers, so about 80% of actions are eligible per
  visit. nba enforces it through its rules; every other policy here picks from the same eligible set.
- `--customers` customers (default 20,000) with `plan` (4 values), `tenure_months` (bucketed <12,
  12-36, 36+), `products` (a list of mobile/broadband/tv) and `region` (3 values); each visit brings a
  context `device` (mobile/desktop/tablet) and `page` (home/shop/support/account).
- Customer c accepts action a on a visit with probability sigmoid(theta_a . z), where z holds the
  traits, the context and every trait x context interaction; each action has a few main effects and
  2-3 interactions. A common intercept shift makes a uniformly random eligible action accepted ~2% of
  the time (per-action averages come out at about 1-5%; the interactions make the tail). On top:
  * 5 niche offers, poor for everyone (about 1%) but accepted 10-20% of the time by one small group
    (two traits and one context value, e.g. south + has mobile + page support: 2-4.5% of visits);
  * 2 offers with a page effect: they help on one page and hurt on another;
  * at the halfway point the offer with the highest average appeal falls to 0.3x, and another
    (random, not niche) rises to 3x.
- Every shown action gets an `impression` event at once (web, with its decision id). Its accept or
  reject arrives 2-200 decisions later (uniform); 30% arrive on `call_center`, 20% carry no
  decision_id (nba credits those to the newest decision that showed the action to that customer).
- Score: the *true* acceptance probability of what was shown (expected reward), not the sampled answer.

Policies on the same stream (same visits, same delays, same uniform numbers behind the answers):
- `nba contextual`: `nba serve` over HTTP, web on `model: contextual` (Bayesian linear Thompson sampling
  on the declared features: one-hot plan, region, products, device, page and tenure buckets;
  `--crosses` adds `{cross: [device, plan]}` and `{cross: [page, plan]}`);
- `nba segment`: the same server with `model: thompson` per segment key (premium = large/unlimited,
  standard = medium, other = basic);
- `vw squarecb`, `vw epsilon 0.05`: Vowpal Wabbit `--cb_explore_adf` in-process on the same features
  (shared namespace, the action id in its own, `-q ca`; with `--crosses` the two crosses are tokens
  of the shared namespace too). VW learns only when an answer arrives, and attributes an answer
  without a decision id the way nba does;
- `random` (uniform over eligible), `oracle` (the true best eligible action);
- `hindsight linear`: per action, least squares of the true probability on the declared features
  (no crosses), fitted on all visits of each half separately (because of the drift), then the best
  predicted eligible action: roughly the best a linear model of these features can do;
- `hindsight segment`: per half and segment-key cell, the eligible action with the best average true
  probability: what a per-segment model could do at best.

Reported per policy: share of oracle (sum of expected reward / the oracle's) over the run and over the
last 20%; regret per 1,000 decisions in 2,000-decision windows; and recovery after the drift: the
number of decisions after the change until a 1,000-decision window (sliding in steps of 250) has regret
per 1,000 within 10% of the policy's own level in the 2,000 decisions before the change. Read it with
the regret windows: a policy still improving before the change has a moving reference, and the second
half is a different world (hindsight linear, which adapts at once, may never get back within 10%).

nba's forgetting (`learning.half_life`) runs on the wall clock and an unpaced run answers ~500
decisions/s here, so a 2m half-life is ~60,000 decisions: pass `--pace 100` (decisions/s) to make a
half-life of minutes act within the run. On this 2-core VM one seed takes about 2.2 minutes unpaced:
world 5 s, each VW run ~10 s, each nba run ~5 s of profile writes plus 35-60 s for 24,000 decisions.

    .venv/bin/pip install vowpalwabbit
    python -m loadtests.hard_world --decisions 24000 --seeds 1 2 3 --out loadtests/results/hard_world.json
    python -m loadtests.hard_world --decisions 24000 --seeds 1 --crosses --half-life 2m
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import yaml

from loadtests.procs import proc_cpu
from loadtests.sim_server import learning_server, put_profiles
from nba.errors import RulesInvalid
from nba.learning.features import encode
from nba.rules.features import FeatureSpace
from nba.rules.load import load_rulebook

PLANS = ["basic", "medium", "large", "unlimited"]
REGIONS = ["north", "central", "south"]
PRODUCTS = ["mobile", "broadband", "tv"]
TENURE_EDGES = [12, 36]
DEVICES = ["mobile", "desktop", "tablet"]
PAGES = ["home", "shop", "support", "account"]
TIERS = ["t1", "t2", "t3", "t4", "t5"]
# the segment key of the per-segment model: premium, standard, and everybody else (basic)
SEGMENTS = {"premium": ["large", "unlimited"], "standard": ["medium"]}
CELLS = ["premium", "standard", "other"]
N_NICHE = 5
N_PAGE_FLIP = 2
MAX_DELAY = 200
WINDOW = 2000  # decisions per reported regret window
RECOVERY_WINDOW, RECOVERY_STEP = 1000, 250


def feature_entries(crosses: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"attribute": "plan", "one_hot": PLANS},
        {"attribute": "region", "one_hot": REGIONS},
        {"attribute": "products", "one_hot": PRODUCTS},
        {"attribute": "tenure_months", "buckets": TENURE_EDGES},
        {"context": "device", "one_hot": DEVICES},
        {"context": "page", "one_hot": PAGES},
    ]
    if crosses:
        out += [{"cross": ["device", "plan"]}, {"cross": ["page", "plan"]}]
    return out


@dataclass(frozen=True)
class RulesOptions:
    model: str  # thompson or contextual, on web
    crosses: bool
    half_life: str | None
    exploration: float = 1.0  # learning.channels.web.exploration


def write_rules(out: Path, excluded: list[list[str]], opts: RulesOptions) -> Path:
    """A rule set whose actions are eligible by tier (`excluded[a]`: the tiers action a is not for)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "actions").mkdir(exist_ok=True)
    channels = {
        "web": {"direction": "inbound", "default_limit": 1, "max_limit": 3},
        "call_center": {"direction": "inbound", "default_limit": 1, "max_limit": 3},
    }
    (out / "channels.yaml").write_text(yaml.safe_dump({"channels": channels}))
    attributes = {
        "plan": {"type": "string"},
        "region": {"type": "string"},
        "tier": {"type": "string"},
        "tenure_months": {"type": "integer"},
        "products": {"type": "list", "values": PRODUCTS},
    }
    (out / "profile.yaml").write_text(yaml.safe_dump({"attributes": attributes}))
    segments = {name: {"when": {"field": "plan", "in": plans}} for name, plans in SEGMENTS.items()}
    (out / "segments.yaml").write_text(yaml.safe_dump({"segments": segments}))
    learning: dict[str, Any] = {
        "model": "thompson",
        "segment_key": list(SEGMENTS),
        "prior": {"alpha": 1, "beta": 19},
        "rewards": {"accept": 1.0},
        "refresh_seconds": 0.5,
        "channels": {"web": {"model": opts.model, "exploration": opts.exploration}},
        "contextual": {"features": feature_entries(opts.crosses)},
    }
    if opts.half_life:
        learning["half_life"] = opts.half_life
    policy = {"groups": {"sales": {"weight": 1.0}, "service": {"weight": 1.0}}, "learning": learning}
    (out / "policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    for a, tiers in enumerate(excluded):
        action: dict[str, Any] = {
            "id": f"offer-{a}",
            "group": "sales" if a % 2 == 0 else "service",
            "channels": ["web"],
            "value": 1,
            "content": {"headline": f"Offer {a}"},
        }
        if tiers:
            action["eligible_when"] = {"field": "tier", "not_in": tiers}
        (out / "actions" / f"offer-{a}.yaml").write_text(yaml.safe_dump(action, sort_keys=False))
    return out


def _sigmoid(v: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-v))
    return out


@dataclass
class World:
    """The hidden truth of one seed, and the random numbers every policy shares."""

    profiles: list[dict[str, Any]]
    excluded: list[list[str]]  # per action: tiers it is not for
    visitors: np.ndarray  # (n,) customer index
    devices: np.ndarray  # (n,) index into DEVICES
    pages: np.ndarray  # (n,) index into PAGES
    x: np.ndarray  # (n, d) the declared features without crosses, as nba encodes them
    p: np.ndarray  # (n, k) true acceptance probability (after the drift in the second half)
    eligible: np.ndarray  # (n, k) bool
    cells: np.ndarray  # (n,) segment-key cell index into CELLS
    u: np.ndarray  # (n,) the answer is accept when u < p of the shown action
    delay: np.ndarray  # (n,) decisions between a decision and its answer
    call_center: np.ndarray  # (n,) bool: the answer arrives on call_center
    no_id: np.ndarray  # (n,) bool: the answer carries no decision_id
    notes: dict[str, Any]

    @property
    def n(self) -> int:
        return int(self.p.shape[0])

    @property
    def k(self) -> int:
        return int(self.p.shape[1])

    @property
    def change(self) -> int:
        return self.n // 2

    def context(self, i: int) -> dict[str, str]:
        return {"device": DEVICES[int(self.devices[i])], "page": PAGES[int(self.pages[i])]}


def _customers(rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    plan_p = rng.dirichlet([2.0] * len(PLANS))
    region_p = rng.dirichlet([3.0] * len(REGIONS))
    tier_p = rng.dirichlet([4.0] * len(TIERS))
    product_rate = rng.uniform(0.2, 0.8, len(PRODUCTS))
    tenure_scale = rng.uniform(15, 50)
    return [
        {
            "plan": PLANS[int(rng.choice(len(PLANS), p=plan_p))],
            "region": REGIONS[int(rng.choice(len(REGIONS), p=region_p))],
            "tier": TIERS[int(rng.choice(len(TIERS), p=tier_p))],
            "tenure_months": int(min(240, rng.exponential(tenure_scale))),
            "products": [p for j, p in enumerate(PRODUCTS) if rng.random() < product_rate[j]],
        }
        for _ in range(n)
    ]


def _traits(profile: dict[str, Any]) -> np.ndarray:
    """The customer's one-hot traits as the truth sees them: plan, region, products, tenure bucket."""
    t = np.zeros(len(PLANS) + len(REGIONS) + len(PRODUCTS) + len(TENURE_EDGES) + 1)
    t[PLANS.index(profile["plan"])] = 1
    t[len(PLANS) + REGIONS.index(profile["region"])] = 1
    for prod in profile["products"]:
        t[len(PLANS) + len(REGIONS) + PRODUCTS.index(prod)] = 1
    t[
        len(PLANS)
        + len(REGIONS)
        + len(PRODUCTS)
        + int(np.searchsorted(TENURE_EDGES, profile["tenure_months"], "right"))
    ] = 1
    return t


def _niche_group(rng: np.random.Generator, z_main: np.ndarray, n_traits: int) -> tuple[np.ndarray, list[int]]:
    """A conjunction of two traits and one context value that covers 2-4.5% of visits."""
    while True:
        cols = [
            *rng.choice(n_traits, 2, replace=False).tolist(),
            int(n_traits + rng.integers(z_main.shape[1] - n_traits)),
        ]
        mask = np.asarray(z_main[:, cols].all(axis=1))
        if 0.02 <= mask.mean() <= 0.045:
            return mask, cols


def make_world(n_customers: int, n_actions: int, visits: int, seed: int, space: FeatureSpace) -> World:
    rng = np.random.default_rng(seed)
    profiles = _customers(rng, n_customers)
    k = n_actions
    exclude_rate = rng.uniform(0.15, 0.25)
    excluded = []
    for _ in range(k):
        tiers = [t for t in TIERS if rng.random() < exclude_rate]
        excluded.append(tiers if len(tiers) < len(TIERS) else tiers[:-1])

    visitors = rng.integers(0, n_customers, visits)
    devices = rng.choice(len(DEVICES), visits, p=rng.dirichlet([3.0] * len(DEVICES)))
    pages = rng.choice(len(PAGES), visits, p=rng.dirichlet([3.0] * len(PAGES)))
    traits = np.array([_traits(profiles[c]) for c in range(n_customers)])[visitors]
    ctx = np.zeros((visits, len(DEVICES) + len(PAGES)))
    ctx[np.arange(visits), devices] = 1
    ctx[np.arange(visits), len(DEVICES) + pages] = 1
    n_traits, n_ctx = traits.shape[1], ctx.shape[1]
    z_main = np.hstack([traits, ctx])
    z_inter = (traits[:, :, None] * ctx[:, None, :]).reshape(visits, -1)

    # the hidden logits, before the common shift
    intercept = rng.uniform(-0.5, 0.5, k)
    w_main = np.zeros((k, z_main.shape[1]))
    w_inter = np.zeros((k, z_inter.shape[1]))
    for a in range(k):
        cols = rng.choice(z_main.shape[1], 3, replace=False)
        w_main[a, cols] = rng.normal(0, 0.5, 3)
        pairs = rng.choice(z_inter.shape[1], int(rng.integers(2, 4)), replace=False)
        w_inter[a, pairs] = rng.uniform(0.6, 1.4, pairs.shape[0]) * np.where(rng.random(pairs.shape[0]) < 0.7, 1, -1)
    special = rng.choice(k, N_NICHE + N_PAGE_FLIP, replace=False)
    niche, flip = special[:N_NICHE], special[N_NICHE:]
    intercept[niche] -= 1.0  # poor for everyone outside their group, whatever their traits
    w_main[niche] = 0
    w_inter[niche] = 0
    flips = []
    for a in flip:
        good, bad = rng.choice(len(PAGES), 2, replace=False)
        w_main[a, n_traits + len(DEVICES) + good] += rng.uniform(0.8, 1.4)
        w_main[a, n_traits + len(DEVICES) + bad] -= rng.uniform(0.8, 1.4)
        flips.append({"action": f"offer-{a}", "helps_on": PAGES[good], "hurts_on": PAGES[bad]})
    logit = intercept + z_main @ w_main.T + z_inter @ w_inter.T
    groups, group_p = [], np.zeros(k)
    masks = np.zeros((visits, k), bool)
    names = [*(f"plan={v}" for v in PLANS), *(f"region={v}" for v in REGIONS), *(f"has {v}" for v in PRODUCTS)]
    names += ["tenure<12", "tenure 12-36", "tenure>=36", *(f"device={v}" for v in DEVICES)]
    names += [f"page={v}" for v in PAGES]
    for a in niche:
        masks[:, a], members = _niche_group(rng, z_main, n_traits)
        group_p[a] = rng.uniform(0.10, 0.20)
        groups.append(
            {
                "action": f"offer-{a}",
                "group": [names[c] for c in members],
                "share": float(masks[:, a].mean()),
                "p": group_p[a],
            }
        )

    eligible = np.array([[profiles[c]["tier"] not in excluded[a] for a in range(k)] for c in range(n_customers)])[
        visitors
    ]
    half = visits // 2

    def probabilities(shift: float) -> np.ndarray:
        p = _sigmoid(logit + shift)
        return np.where(masks, group_p, p)

    lo, hi = -10.0, 5.0  # the common shift: a random eligible action is accepted 2% of the time
    for _ in range(60):
        mid = (lo + hi) / 2
        p = probabilities(mid)[:half]
        rate = float(((p * eligible[:half]).sum(1) / eligible[:half].sum(1)).mean())
        lo, hi = (mid, hi) if rate < 0.02 else (lo, mid)
    p = probabilities(lo)
    mean_p = p[:half].mean(0)
    best = int(np.argmax(mean_p))
    others = [a for a in range(k) if a != best and a not in niche]
    riser = int(rng.choice(others))
    p[half:, best] *= 0.3
    p[half:, riser] = np.minimum(0.95, 3 * p[half:, riser])

    x = np.array(
        [
            encode(space, profiles[c], {"device": DEVICES[dv], "page": PAGES[pg]}, set())
            for c, dv, pg in zip(visitors.tolist(), devices.tolist(), pages.tolist(), strict=True)
        ]
    )
    plans = np.array([PLANS.index(profiles[c]["plan"]) for c in visitors.tolist()])
    cells = np.where(plans >= 2, 0, np.where(plans == 1, 1, 2))
    oracle = np.where(eligible, p, -1).max(1)
    notes = {
        "shift": lo,
        "random_eligible_rate": float(((p * eligible).sum(1) / eligible.sum(1)).mean()),
        "oracle_rate": float(oracle.mean()),
        "action_mean_p_first_half": [round(float(v), 4) for v in np.sort(mean_p)],
        "eligible_share": float(eligible.mean()),
        "niche": groups,
        "page_flip": flips,
        "drift": {
            "falls_0.3x": f"offer-{best}",
            "rises_3x": f"offer-{riser}",
            "riser_mean_p_first_half": float(mean_p[riser]),
        },
        "n_trait_cols": n_traits,
        "n_context_cols": n_ctx,
    }
    shared = np.random.default_rng(seed + 1000)
    return World(
        profiles,
        excluded,
        visitors,
        devices,
        pages,
        x,
        p,
        eligible,
        cells,
        shared.random(visits),
        shared.integers(2, MAX_DELAY + 1, visits),
        shared.random(visits) < 0.3,
        shared.random(visits) < 0.2,
        notes,
    )


@dataclass
class Run:
    name: str
    shown: np.ndarray  # (n,) action index, -1 when nothing was shown
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # of the server process (nba) or of this process (vw)
    notes: dict[str, Any] = field(default_factory=dict)

    def expected(self, world: World) -> np.ndarray:
        out: np.ndarray = np.where(self.shown >= 0, world.p[np.arange(world.n), np.maximum(self.shown, 0)], 0.0)
        return out


def offline(name: str, world: World, choose: Callable[[int], int]) -> Run:
    start = time.perf_counter()
    shown = np.array([choose(i) for i in range(world.n)])
    return Run(name, shown, time.perf_counter() - start)


def hindsight_linear(world: World) -> Run:
    """Per half, per action: least squares of the true probability on the declared features."""
    scores = np.empty_like(world.p)
    for part in (slice(0, world.change), slice(world.change, None)):
        w, *_ = np.linalg.lstsq(world.x[part], world.p[part], rcond=None)
        scores[part] = world.x[part] @ w
    shown = np.where(world.eligible, scores, -np.inf).argmax(1)
    return Run("hindsight linear", shown)


def hindsight_segment(world: World) -> Run:
    scores = np.empty_like(world.p)
    for part in (slice(0, world.change), slice(world.change, None)):
        cells, p = world.cells[part], world.p[part]
        means = np.array(
            [p[cells == c].mean(0) if (cells == c).any() else np.zeros(world.k) for c in range(len(CELLS))]
        )
        scores[part] = means[cells]
    shown = np.where(world.eligible, scores, -np.inf).argmax(1)
    return Run("hindsight segment", shown)


def _vw_shared(world: World, i: int, crosses: bool) -> str:
    prof = world.profiles[int(world.visitors[i])]
    bucket = int(np.searchsorted(TENURE_EDGES, prof["tenure_months"], "right"))
    dev, page = DEVICES[int(world.devices[i])], PAGES[int(world.pages[i])]
    tokens = [f"plan={prof['plan']}", f"region={prof['region']}", f"tenure={bucket}", f"device={dev}", f"page={page}"]
    tokens += [f"has={p}" for p in prof["products"]]
    if crosses:
        tokens += [f"device_plan={dev}_{prof['plan']}", f"page_plan={page}_{prof['plan']}"]
    return "shared |c " + " ".join(tokens)


def vw_run(name: str, world: World, seed: int, args: str, crosses: bool) -> Run:
    """VW on the same stream; it learns from an answer only when the answer arrives, and credits an
    answer without a decision id to the newest decision that showed that action to that customer."""
    import vowpalwabbit

    vw = vowpalwabbit.Workspace(f"--cb_explore_adf --quiet -q ca --random_seed {seed} {args}")
    rng = np.random.default_rng(seed + 2)
    n = world.n
    shown = np.full(n, -1, np.int64)
    logged: dict[int, tuple[str, np.ndarray, np.ndarray]] = {}  # decision -> shared, eligible, pmf
    latest: dict[tuple[int, int], int] = {}  # (customer, action) -> newest decision that showed it
    due: list[tuple[int, int]] = []
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        while due and due[0][0] <= i:
            _, j = heapq.heappop(due)
            a = int(shown[j])
            target = latest[(int(world.visitors[j]), a)] if world.no_id[j] else j
            shared, elig, pmf = logged[target]
            reward = float(world.u[j] < world.p[j, a])
            pos = int(np.flatnonzero(elig == a)[0]) if shown[target] == a else -1
            if pos < 0:  # unreachable: `latest` only names decisions that showed `a`
                continue
            lines = [shared] + [
                f"0:{-reward}:{pmf[m]} |a id=offer{b}" if m == pos else f"|a id=offer{b}" for m, b in enumerate(elig)
            ]
            vw.learn(lines)
        elig = np.flatnonzero(world.eligible[i])
        shared = _vw_shared(world, i, crosses)
        pmf = np.asarray(vw.predict([shared, *(f"|a id=offer{b}" for b in elig)]), float)
        m = int(rng.choice(elig.shape[0], p=pmf / pmf.sum()))
        a = int(elig[m])
        shown[i] = a
        logged[i] = (shared, elig, pmf)
        latest[(int(world.visitors[i]), a)] = i
        heapq.heappush(due, (i + int(world.delay[i]), i))
    run = Run(name, shown, time.perf_counter() - start, time.process_time() - cpu)
    vw.finish()
    return run


_METRICS = (
    "nba_events_total",
    "nba_learner_events_total",
    "nba_learner_errors_total",
    "nba_decision_conflicts_total",
    "nba_decision_stalls_total",
    "nba_redis_errors_total",
    "nba_model_refresh_errors_total",
    "nba_unreadable_records_total",
    "nba_http_requests_total",
    "nba_decisions_total",
)


def _metric_lines(text: str) -> list[str]:
    """The counters worth reading after a run: non-zero samples of the families above."""
    out = []
    for line in text.splitlines():
        if line.startswith(_METRICS) and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            if "_created" not in name and float(value) != 0:
                out.append(line)
    return out


def _lag(text: str) -> float | None:
    m = re.search(r"^nba_learner_lag_seconds (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


@dataclass
class _Loop:
    """The shared state of the workers driving one nba run."""

    world: World
    base: str
    http: aiohttp.ClientSession
    shown: np.ndarray
    pace: float | None = None  # decisions per second over all workers; None: as fast as nba answers
    start: float = 0.0
    next_visit: int = 0
    due: list[tuple[int, int]] = field(default_factory=list)
    decision_ids: dict[int, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    latency: list[float] = field(default_factory=list)

    def count(self, what: str, by: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + by

    def answer(self, j: int) -> dict[str, Any]:
        w, a = self.world, int(self.shown[j])
        event: dict[str, Any] = {
            "event_id": f"{j}-a",
            "type": "accept" if w.u[j] < w.p[j, a] else "reject",
            "customer_id": f"sim-{w.visitors[j]}",
            "action_id": f"offer-{a}",
            "channel": "call_center" if w.call_center[j] else "web",
        }
        if not w.no_id[j]:
            event["decision_id"] = self.decision_ids[j]
        return event

    async def decide(self, i: int) -> dict[str, Any] | None:
        body = {
            "customer_id": f"sim-{self.world.visitors[i]}",
            "channel": "web",
            "limit": 1,
            "context": self.world.context(i),
        }
        for attempt in range(10):
            t0 = time.perf_counter()
            async with self.http.post(f"{self.base}/v1/decide", json=body) as r:
                d: dict[str, Any] = await r.json(content_type=None)
                self.latency.append(time.perf_counter() - t0)
                if r.status == 200:
                    return d
                self.count(f"decide_http_{r.status}")
                if r.status != 503:
                    print(f"  decide {i}: {r.status} {d}", flush=True)
                    return None
            await asyncio.sleep(0.05 * (attempt + 1))
        return None

    async def post_events(self, events: list[dict[str, Any]]) -> None:
        for attempt in range(20):  # a channel retries a 503 (same event ids: applied once)
            async with self.http.post(f"{self.base}/v1/events", json={"events": events}) as r:
                body = await r.json(content_type=None)
                if r.status == 202:
                    for key in ("credited", "unattributed", "duplicates"):
                        self.count(f"events_{key}", int(body.get(key, 0)))
                    return
                self.count(f"events_http_{r.status}")
                if r.status != 503:
                    print(f"  events: {r.status} {body}", flush=True)
                    return
            await asyncio.sleep(0.05 * (attempt + 1))

    async def worker(self, progress: Callable[[int], None]) -> None:
        w = self.world
        while self.next_visit < w.n:
            i = self.next_visit
            self.next_visit += 1
            progress(i)
            if self.pace:  # forgetting runs on the wall clock: a half-life means little at full speed
                await asyncio.sleep(max(0.0, self.start + i / self.pace - time.perf_counter()))
            answers = []
            while self.due and self.due[0][0] <= i:  # answers whose time has come
                answers.append(self.answer(heapq.heappop(self.due)[1]))
            d = await self.decide(i)
            events: list[dict[str, Any]] = []
            if d is not None:
                self.count("degraded", bool(d.get("degraded")))
                if d["actions"]:
                    a = int(d["actions"][0]["action_id"].split("-")[1])
                    self.shown[i] = a
                    self.decision_ids[i] = d["decision_id"]
                    self.count("ineligible_shown", int(not w.eligible[i, a]))
                    events.append(
                        {
                            "event_id": f"{i}-i",
                            "type": "impression",
                            "customer_id": f"sim-{w.visitors[i]}",
                            "action_id": f"offer-{a}",
                            "decision_id": d["decision_id"],
                            "channel": "web",
                        }
                    )
                else:
                    self.count("empty_decisions")
            events += answers
            if events:
                await self.post_events(events)
            if self.shown[i] >= 0:  # only once its impression is in: an answer never precedes it
                heapq.heappush(self.due, (i + int(w.delay[i]), i))


async def nba_run(name: str, world: World, rules: Path, workdir: Path, args: argparse.Namespace) -> Run:
    shown = np.full(world.n, -1, np.int64)
    lags: list[tuple[int, float]] = []
    async with learning_server(workdir, name, rules, args.workers * 2) as server:
        http, base = server.http, server.base
        setup = time.perf_counter()
        # only the customers who visit: the others would cost minutes and change nothing
        await put_profiles(server, {f"sim-{c}": world.profiles[c] for c in np.unique(world.visitors).tolist()})
        setup = time.perf_counter() - setup
        cpu0, start = proc_cpu([server.process.pid]), time.perf_counter()
        loop = _Loop(world, base, http, shown, args.pace, start)

        def progress(i: int) -> None:
            if i % 4000 == 0:
                print(f"  {name}: {i} decisions, {time.perf_counter() - start:.0f} s", flush=True)

        async def sample_lag() -> None:  # the learner's lag over the run, not only at its end
            while True:
                await asyncio.sleep(5)
                async with http.get(f"{base}/metrics") as r:
                    lag = _lag(await r.text())
                if lag is not None:
                    lags.append((loop.next_visit, lag))

        sampler = asyncio.create_task(sample_lag())
        await asyncio.gather(*(loop.worker(progress) for _ in range(args.workers)))
        seconds = time.perf_counter() - start
        cpu = proc_cpu([server.process.pid]) - cpu0
        sampler.cancel()
        await asyncio.sleep(2)  # one more learner batch and model refresh before reading counters
        async with http.get(f"{base}/metrics") as r:
            metrics = await r.text()
    lat = np.asarray(loop.latency) * 1000
    notes: dict[str, Any] = {
        **loop.counts,
        "profile_puts_seconds": setup,
        "decide_ms_p50": float(np.percentile(lat, 50)),
        "decide_ms_p99": float(np.percentile(lat, 99)),
        "learner_lag_s_max": max((v for _, v in lags), default=None),
        "learner_lag_s_samples": lags,
        "metrics": _metric_lines(metrics),
    }
    return Run(name, shown, seconds, cpu, notes)


def _regret_rate(regret: np.ndarray, lo: int, hi: int) -> float:
    return float(regret[lo:hi].mean() * 1000)


def score(run: Run, world: World, oracle: np.ndarray) -> dict[str, Any]:
    exp = run.expected(world)
    regret = oracle - exp
    n, change = world.n, world.change
    tail = slice(int(0.8 * n), None)
    windows = [_regret_rate(regret, lo, min(n, lo + WINDOW)) for lo in range(0, n, WINDOW)]
    before = _regret_rate(regret, max(0, change - WINDOW), change)
    recovery: int | None = None
    for s in range(0, n - change - RECOVERY_WINDOW + 1, RECOVERY_STEP):
        if _regret_rate(regret, change + s, change + s + RECOVERY_WINDOW) <= 1.1 * before:
            recovery = s + RECOVERY_WINDOW
            break
    return {
        "policy": run.name,
        "expected_reward": float(exp.sum()),
        "share_of_oracle": float(exp.sum() / oracle.sum()),
        "share_of_oracle_last_20pct": float(exp[tail].sum() / oracle[tail].sum()),
        "regret_per_1000_windows": windows,
        "regret_per_1000_before_change": before,
        "regret_per_1000_after_change_first_2000": _regret_rate(regret, change, change + WINDOW),
        "recovery_decisions": recovery,
        "seconds": run.seconds,
        "cpu_seconds": run.cpu_seconds,
        **run.notes,
    }


def _recovery_text(row: dict[str, Any]) -> str:
    if row["policy"] == "oracle":
        return "-"
    r = row["recovery_decisions"]
    return "not within the run" if r is None else f"{r}"


def print_row(row: dict[str, Any]) -> None:
    print(
        f"{row['policy']:22} {100 * row['share_of_oracle']:7.1f}% {100 * row['share_of_oracle_last_20pct']:9.1f}% "
        f"{row['regret_per_1000_before_change']:9.2f} {row['regret_per_1000_after_change_first_2000']:9.2f} "
        f"{_recovery_text(row):>19} {row['seconds']:8.0f}",
        flush=True,
    )


async def run_seed(args: argparse.Namespace, seed: int, tmp: Path, out: list[dict[str, Any]]) -> None:
    opts = {m: RulesOptions(m, args.crosses, args.half_life, args.exploration) for m in ("thompson", "contextual")}
    plain = write_rules(
        tmp / f"plain-{seed}", [[] for _ in range(args.actions)], RulesOptions("contextual", False, None)
    )
    world = make_world(args.customers, args.actions, args.decisions, seed, load_rulebook(plain).learning.features)
    rules = {m: write_rules(tmp / f"rules-{m}-{seed}", world.excluded, o) for m, o in opts.items()}
    for path in rules.values():
        try:
            rb = load_rulebook(path)
        except RulesInvalid as exc:
            print(f"the generated rules do not load ({path}):\n{exc}", flush=True)
            raise SystemExit(2) from None
    dims = rb.learning.features.dim
    notes = world.notes
    print(
        f"\nseed {seed}: {world.n} decisions, {world.k} actions, {len(world.profiles)} customers, "
        f"{100 * notes['eligible_share']:.0f}% eligible, random eligible {100 * notes['random_eligible_rate']:.2f}%, "
        f"oracle {100 * notes['oracle_rate']:.2f}%, contextual features {dims} columns"
        f"{', crosses' if args.crosses else ''}{', half-life ' + args.half_life if args.half_life else ''}"
        f"{f', nba paced at {args.pace:g} decisions/s' if args.pace else ''}",
        flush=True,
    )
    print(f"  drift: {world.notes['drift']}", flush=True)
    print(
        f"{'policy':22} {'% oracle':>8} {'last 20%':>10} {'regret<chg':>9} {'regret>chg':>9} {'recovery (decis.)':>19} "
        f"{'seconds':>8}"
    )
    oracle_run = offline("oracle", world, lambda i: int(np.where(world.eligible[i], world.p[i], -1).argmax()))
    oracle = oracle_run.expected(world)
    rng = np.random.default_rng(seed + 4)
    report: dict[str, Any] = {
        "seed": seed,
        "decisions": world.n,
        "actions": world.k,
        "customers": len(world.profiles),
        "crosses": args.crosses,
        "half_life": args.half_life,
        "exploration": args.exploration,
        "pace": args.pace,
        "world": world.notes,
        "policies": [],
    }
    out.append(report)

    def add(run: Run) -> None:
        """Print and save each policy as soon as it has run: a long run must not lose finished results."""
        row = score(run, world, oracle)
        report["policies"].append(row)
        print_row(row)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(out, indent=1))

    add(oracle_run)
    add(offline("random", world, lambda i: int(rng.choice(np.flatnonzero(world.eligible[i])))))
    add(hindsight_linear(world))
    add(hindsight_segment(world))
    if not args.skip_vw:
        add(vw_run("vw squarecb", world, seed, "--squarecb", args.crosses))
        add(vw_run("vw epsilon 0.05", world, seed, "--epsilon 0.05", args.crosses))
    if not args.skip_nba:
        for model, name in (("contextual", "nba contextual"), ("thompson", "nba segment")):
            run = await nba_run(name, world, rules[model], tmp, args)
            add(run)
            shown = {k: v for k, v in run.notes.items() if k not in ("metrics", "learner_lag_s_samples")}
            print(f"    {name}: {shown}", flush=True)
            for line in run.notes["metrics"]:
                print(f"      {line}", flush=True)
    print(f"regret per 1,000 decisions, {WINDOW}-decision windows (the change is at {world.change}):")
    for row in report["policies"]:
        print(f"  {row['policy']:20} " + " ".join(f"{v:5.1f}" for v in row["regret_per_1000_windows"]), flush=True)


def summary(out: list[dict[str, Any]]) -> None:
    if len(out) < 2:
        return
    print(f"\nmean over seeds {[r['seed'] for r in out]}")
    print(f"{'policy':22} {'% oracle':>8} {'last 20%':>10}  recovery per seed")
    for name in [p["policy"] for p in out[0]["policies"]]:
        rows = [p for r in out for p in r["policies"] if p["policy"] == name]
        share = np.mean([p["share_of_oracle"] for p in rows])
        late = np.mean([p["share_of_oracle_last_20pct"] for p in rows])
        print(f"{name:22} {100 * share:7.1f}% {100 * late:9.1f}%  {', '.join(_recovery_text(p) for p in rows)}")


async def main_async(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="nba-hard-"))
    out: list[dict[str, Any]] = []
    for seed in args.seeds:
        await run_seed(args, seed, tmp, out)
    summary(out)
    if args.out:
        print(f"wrote {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=24_000)
    parser.add_argument("--actions", type=int, default=40, choices=range(30, 101), metavar="30..100")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=8, help="concurrent channel sessions against nba")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--crosses", action="store_true", help="declare {cross: [device, plan]} and [page, plan]")
    parser.add_argument("--half-life", help="learning.half_life, a duration such as 30m")
    parser.add_argument("--exploration", type=float, default=1.0, help="learning exploration on web (default 1)")
    parser.add_argument(
        "--pace",
        type=float,
        help="decisions per second against nba (default: as fast as it answers); a half-life is wall-clock time",
    )
    parser.add_argument("--skip-nba", action="store_true", help="only the offline policies and VW")
    parser.add_argument("--skip-vw", action="store_true")
    parser.add_argument(
        "--out",
        type=lambda v: Path(v) if v else None,
        default=Path("loadtests/results/hard_world.json"),
        help="JSON report ('' for none)",
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
