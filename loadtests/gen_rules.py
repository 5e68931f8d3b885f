"""Generate a large rule set (default 1,000 actions) over the shipped segments, for benchmarks.

Each action gets 1-3 segment conditions (some negated), 1-2 channels plus web, a value, a weight and two
limits (a frequency cap and a suppression after reject), like a marketer's real catalogue.

    python -m loadtests.gen_rules OUT_DIR --actions 1000 --seed 1
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
SEGMENTS = [
    "mobile_customer",
    "broadband_customer",
    "tv_customer",
    "crosssell_consent",
    "email_missing",
    "high_value",
    "mid_value",
    "low_value",
    "long_tenure",
    "new_customer",
    "heavy_data_user",
    "pays_too_much",
    "recent_buyer",
    "triple_play",
    "billing_contact",
    "on_mobile_device",
]
GROUPS = ["sales", "retention", "service", "data"]
CHANNELS = ["app", "call_center", "email"]


def generate(out: Path, n_actions: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in ("channels.yaml", "profile.yaml", "segments.yaml", "policy.yaml"):
        shutil.copy(ROOT / "rules" / name, out / name)
    (out / "actions").mkdir()
    shutil.copy(ROOT / "rules" / "actions" / "no-action.yaml", out / "actions" / "no-action.yaml")
    for i in range(n_actions - 1):
        segs = rng.choice(SEGMENTS, size=int(rng.integers(1, 4)), replace=False).tolist()
        negate = int(rng.integers(0, len(segs)))
        cond: dict[str, object] = {"all": [{"in_segment": s} for s in segs[negate:]] or [{"in_segment": segs[0]}]}
        if negate:
            cond["none"] = [{"in_segment": s} for s in segs[:negate]]
        action = {
            "id": f"gen-{i:05d}",
            "name": f"Generated action {i}",
            "group": GROUPS[int(rng.integers(len(GROUPS)))],
            "channels": ["web", *rng.choice(CHANNELS, size=int(rng.integers(1, 3)), replace=False).tolist()],
            "value": round(float(rng.lognormal(2.0, 0.8)), 2),
            "weight": round(float(rng.uniform(0.5, 1.5)), 2),
            "eligible_when": cond,
            "limits": [
                {"count": "impression", "max": int(rng.integers(2, 6)), "per": f"{int(rng.integers(1, 4))}w"},
                {"after": "reject", "suppress_for": f"{int(rng.integers(7, 90))}d"},
            ],
            "content": {"headline": f"Offer {i}"},
            "reason": f"Generated reason {i}",
        }
        (out / "actions" / f"{action['id']}.yaml").write_text(yaml.safe_dump(action, sort_keys=False))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--actions", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(generate(args.out, args.actions, args.seed))


if __name__ == "__main__":
    main()
