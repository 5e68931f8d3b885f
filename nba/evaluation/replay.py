"""`nba evaluate`: how would a candidate policy have done on the logged decisions?

Every logged slot (an action shown at a rank) is weighed by w = pi / p, the candidate's probability of
that action at that rank (candidate.py) over the logging policy's, which every decision records (exact:
integrated by the model arm, 1/m in the control group). The estimate is position-based: the reward of
an action at a rank is taken to depend on the customer, the action and the rank, not on what else was
shown. Per record, over the ranks it holds:

    IPS    sum over its slots of  w y
    DR     sum over its slots of  sum_a pi_r(a) q(a, r)  +  w (y - q(a_r, r))
    SNIPS  per rank: (sum of w y / sum of w) x the candidate's chance of filling that rank; summed

q is the reward model fitted on the logs by cross-fitting (reward_model.py). The candidate's reward per
decision comes with 95% normal intervals over records (the delta method for SNIPS) and overlap
diagnostics per rank: the effective sample size (sum w)^2 / sum w^2, the largest weight, and the share
of the candidate's placements on actions the logging policy could not have shown (from the records'
`showable`), which no estimator can recover. Where overlap is too poor to trust the intervals, the
report says so and the command refuses unless forced.

A rank the logging policy left empty (the do-nothing threshold won) holds no slot: what the candidate
would have earned there is not estimated.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nba.domain import FloatArray
from nba.evaluation.candidate import Candidate
from nba.evaluation.estimators import Estimate, Overlap, Slots, doubly_robust, ips, logged, overlap, snips
from nba.evaluation.logs import Logged
from nba.evaluation.reward_model import FOLDS, RewardModel

# Overlap too poor to trust the intervals: an effective sample size below MIN_ESS slots, or below
# MIN_ESS_SHARE of a rank's slots, or more than MAX_UNSUPPORTED of the candidate's placements where the
# logging policy could not have placed anything.
MIN_ESS = 100.0
MIN_ESS_SHARE = 0.01
MAX_UNSUPPORTED = 0.02
# The weights of a rank average the candidate's chance of filling it when the logging policy could show
# whatever the candidate shows there; off by more than WEIGHT_DRIFT (and by more than 2 standard errors),
# the log rarely or never shows what the candidate would, and IPS cannot see that part.
WEIGHT_DRIFT = 0.05


@dataclass(frozen=True)
class Replay:
    """The logged slots of the records that could be evaluated, with the candidate's side of each."""

    candidate: str
    slots: Slots
    unsupported: FloatArray  # per slot: the candidate's chance of placing, there, what the log could not show
    skipped: Counter[str] = field(default_factory=Counter)
    monte_carlo: int = 0  # records whose logged probabilities were Monte Carlo shares


def replay(logs: Sequence[Logged], candidate: Candidate, folds: int = FOLDS) -> Replay:
    usable: list[tuple[Logged, tuple[str, ...], FloatArray]] = []
    skipped: Counter[str] = Counter()
    for rec in logs:
        found = candidate.placements(rec, rec.ranks)
        if isinstance(found, str):
            skipped[found] += 1
        else:
            usable.append((rec, *found))
    model = RewardModel([u[0] for u in usable], folds) if usable else None
    cols: dict[str, list[float]] = {k: [] for k in ("record", "rank", "p", "pi", "y", "q", "dm", "fill", "un")}
    for i, (rec, ids, placed) in enumerate(usable):
        assert model is not None
        where = {a: j for j, a in enumerate(ids)}
        outside = None if rec.showable is None else np.array([a not in rec.showable for a in ids])
        for s in rec.slots:
            row = placed[s.rank - 1]
            q = model.predict(i, ids, s.rank)
            j = where.get(s.action)
            cols["record"].append(i)
            cols["rank"].append(s.rank)
            cols["p"].append(s.probability)
            cols["pi"].append(float(row[j]) if j is not None else 0.0)
            cols["y"].append(s.reward)
            cols["q"].append(float(q[j]) if j is not None else float(model.predict(i, [s.action], s.rank)[0]))
            cols["dm"].append(float(row @ q))
            cols["fill"].append(float(row.sum()))
            cols["un"].append(float(row[outside].sum()) if outside is not None else math.nan)
    arr = {k: np.array(v) for k, v in cols.items()}
    slots = Slots(
        n=len(usable),
        record=arr["record"].astype(np.int64),
        rank=arr["rank"].astype(np.int64),
        p=arr["p"],
        pi=arr["pi"],
        reward=arr["y"],
        q=arr["q"],
        direct=arr["dm"],
        fill=arr["fill"],
    )
    return Replay(candidate.name, slots, arr["un"], skipped, sum(1 for rec, _, _ in usable if rec.monte_carlo))


def report(r: Replay) -> dict[str, Any]:
    """The estimates, the overlap per rank and what is wrong with it, as plain data."""

    def est(e: Estimate) -> dict[str, float]:
        return {"value": e.value, "low_95": e.low, "high_95": e.high}

    s = r.slots
    out: dict[str, Any] = {
        "candidate": r.candidate,
        "records": s.n,
        "skipped": dict(r.skipped),
        "monte_carlo_records": r.monte_carlo,
    }
    if s.n < 2:
        out["refused"] = ["fewer than 2 records could be evaluated"]
        return out
    base = logged(s)
    estimates = {"ips": ips(s), "snips": snips(s), "doubly_robust": doubly_robust(s)}
    out |= {
        "unit": "reward per decision, over the ranks each record holds",
        "logged": est(base),
        **{name: est(e) for name, e in estimates.items()},
        "relative_to_logged": {name: (e.value / base.value if base.value else None) for name, e in estimates.items()},
    }
    ranks, problems = [], []
    for rank in np.unique(s.rank).tolist():
        o = overlap(s, int(rank))
        at = s.rank == rank
        known = at & ~np.isnan(r.unsupported)
        fill = float(s.fill[known].sum())
        unsupported = float(r.unsupported[known].sum()) / fill if known.any() and fill > 0 else None
        ranks.append(
            {
                "rank": o.rank,
                "slots": o.slots,
                "ips": float((s.weight[at] * s.reward[at]).sum()) / s.n,
                "effective_sample_size": o.effective_sample_size,
                "largest_weight": o.largest_weight,
                "mean_weight": o.mean_weight,
                "candidate_fill": o.fill,
                "unsupported_share": unsupported,
            }
        )
        problems += _problems(o, unsupported)
    out["ranks"] = ranks
    out["refused"] = problems
    return out


def _problems(o: Overlap, unsupported: float | None) -> list[str]:
    out = []
    if o.effective_sample_size < MIN_ESS or o.effective_sample_size < MIN_ESS_SHARE * o.slots:
        out.append(
            f"rank {o.rank}: effective sample size {o.effective_sample_size:.0f} of {o.slots} slots: the candidate "
            f"is too far from what was logged to judge (at least {MIN_ESS:.0f} and {MIN_ESS_SHARE:.0%} are needed)"
        )
    if unsupported is not None and unsupported > MAX_UNSUPPORTED:
        out.append(
            f"rank {o.rank}: {unsupported:.1%} of the candidate's placements are of actions the logging policy "
            f"could not show; no estimator can say what they earn"
        )
    drift = abs(o.mean_weight - o.fill)
    if o.fill > 0 and drift > WEIGHT_DRIFT * o.fill and drift > 2 * o.mean_weight_se:
        out.append(
            f"rank {o.rank}: the weights average {o.mean_weight:.3f} where they should average {o.fill:.3f}: the log "
            f"rarely or never shows at this rank what the candidate would"
        )
    return out


def render(rep: dict[str, Any]) -> str:
    """The report as a table a person reads."""
    lines = [f"candidate: {rep['candidate']}", f"records evaluated: {rep['records']:,}"]
    if rep.get("skipped"):
        lines.append(
            "skipped: " + ", ".join(f"{n:,} {why.replace('_', ' ')}" for why, n in sorted(rep["skipped"].items()))
        )
    if rep.get("monte_carlo_records"):
        lines.append(
            f"warning: {rep['monte_carlo_records']:,} records carry Monte Carlo probabilities (written before nba "
            "integrated them): their weights are biased upwards for rarely chosen actions"
        )
    if "logged" not in rep:
        return "\n".join([*lines, *rep.get("refused", [])])
    lines += ["", f"{rep['unit']}", f"{'':24}{'estimate':>12}  {'95% interval':>24}  {'vs logged':>10}"]
    for label, key in (
        ("logged policy", "logged"),
        ("candidate, IPS", "ips"),
        ("candidate, SNIPS", "snips"),
        ("candidate, doubly robust", "doubly_robust"),
    ):
        e = rep[key]
        ratio = rep["relative_to_logged"].get(key) if key != "logged" else 1.0
        lines.append(
            f"{label:24}{e['value']:12.6f}  [{e['low_95']:10.6f}, {e['high_95']:10.6f}]  "
            + (f"{ratio:9.4f}x" if ratio is not None else f"{'-':>10}")
        )
    lines += [
        "",
        f"{'rank':>4} {'slots':>9} {'IPS':>10} {'eff. sample':>12} {'largest w':>10} {'mean w':>7} {'unsupported':>12}",
    ]
    for rk in rep["ranks"]:
        un = rk["unsupported_share"]
        lines.append(
            f"{rk['rank']:>4} {rk['slots']:>9,} {rk['ips']:>10.6f} {rk['effective_sample_size']:>12,.0f} "
            f"{rk['largest_weight']:>10.2f} {rk['mean_weight']:>7.3f} {('-' if un is None else f'{un:.1%}'):>12}"
        )
    if rep["refused"]:
        lines += ["", "overlap too poor to trust these numbers:", *(f"  {p}" for p in rep["refused"])]
    return "\n".join(lines)
