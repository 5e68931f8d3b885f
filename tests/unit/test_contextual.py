"""Features, the contextual model and its rules: seeded, deterministic, no I/O."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from nba.decision.rank import control_bucket
from nba.errors import RulesInvalid
from nba.evaluation.estimators import lift
from nba.learning.contextual import ContextualModel, ContextualStats, accumulate
from nba.learning.features import encode, pack, unpack
from nba.rules.features import Feature, FeatureSpace
from nba.rules.load import load_rulebook

SPACE = FeatureSpace(
    (
        Feature("attribute", "plan", "one_hot", values=("basic", "large")),
        Feature("attribute", "usage_gb", "buckets", edges=(5.0, 20.0)),
        Feature("attribute", "tenure_months", "scale", scale=120.0),
        Feature("attribute", "products", "one_hot", values=("mobile", "tv")),
        Feature("attribute", "consents.email", "flag"),
        Feature("context", "device", "one_hot", values=("mobile", "desktop")),
        Feature("segment", "high_value", "flag"),
    )
)


def test_encoding_of_every_kind_of_feature() -> None:
    x = encode(
        SPACE,
        {
            "plan": "large",
            "usage_gb": 20,
            "tenure_months": 240,
            "products": ["mobile", "tv"],
            "consents": {"email": True},
        },
        {"device": "desktop"},
        {"high_value"},
    )
    assert SPACE.dim == 1 + 2 + 3 + 1 + 2 + 1 + 2 + 1
    assert x.tolist() == [1, 0, 1, 0, 0, 1, 1.0, 1, 1, 1, 0, 1, 1]
    names = SPACE.column_names()
    assert names[3:6] == ["attribute:usage_gb[-inf,5)", "attribute:usage_gb[5,20)", "attribute:usage_gb[20,inf)"]
    # unknown values and missing attributes set nothing: only the intercept is left
    empty = encode(SPACE, {"plan": "platinum"}, {}, set())
    assert empty.tolist() == [1] + [0] * (SPACE.dim - 1)
    assert unpack(pack(x), SPACE.dim).tolist() == x.tolist()


def test_the_signature_names_the_columns() -> None:
    other = FeatureSpace(SPACE.features[:-1])
    assert SPACE.signature != other.signature
    assert SPACE.signature == FeatureSpace(tuple(SPACE.features)).signature


def _simulate(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two actions in one group: action 0 is accepted by `large` plans, action 1 by mobile devices."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, SPACE.dim))
    x[:, 0] = 1
    x[np.arange(n), 1 + rng.integers(0, 2, n)] = 1  # plan
    x[np.arange(n), 10 + rng.integers(0, 2, n)] = 1  # device
    actions = rng.integers(0, 2, n)
    truth = np.where(actions == 0, 0.05 + 0.4 * x[:, 2], 0.05 + 0.3 * x[:, 10])
    rewards = (rng.random(n) < truth).astype(float)
    return x, actions, truth, rewards


def test_the_posterior_recovers_who_accepts_what() -> None:
    x, actions, _, rewards = _simulate(4000, seed=1)
    stats = accumulate(SPACE.dim, actions, x, np.ones(len(x)), rewards, 2)
    model = ContextualModel.build(stats, np.array([0, 0]), 1, np.array([0.05, 0.05]), 0.05, 0.1)
    large_mobile, basic_desktop = np.zeros(SPACE.dim), np.zeros(SPACE.dim)
    large_mobile[[0, 2, 10]] = 1
    basic_desktop[[0, 1, 11]] = 1
    mean, sd = model.score(large_mobile, np.array([0, 1]))
    assert abs(mean[0] - 0.45) < 0.05, mean
    assert abs(mean[1] - 0.35) < 0.05, mean
    mean, sd = model.score(basic_desktop, np.array([0, 1]))
    assert abs(mean[0] - 0.05) < 0.05, mean
    assert abs(mean[1] - 0.05) < 0.05, mean
    assert (sd < 0.05).all()


def test_a_new_action_borrows_its_groups_knowledge_and_is_uncertain() -> None:
    x, actions, _, rewards = _simulate(4000, seed=2)
    seen = actions == 0
    stats = accumulate(
        SPACE.dim, np.zeros(int(seen.sum()), np.int64), x[seen], np.ones(int(seen.sum())), rewards[seen], 3
    )
    # action 1 is new in action 0's group; action 2 is new in a group of its own
    model = ContextualModel.build(stats, np.array([0, 0, 1]), 2, np.array([0.05, 0.05, 0.05]), 0.05, 0.1)
    large = np.zeros(SPACE.dim)
    large[[0, 2]] = 1
    mean, sd = model.score(large, np.array([0, 1, 2]))
    assert mean[1] > 0.3  # learned from its group: large plans accept
    assert abs(mean[2] - 0.05) < 0.02  # nothing to borrow: the rules' prior
    assert sd[1] > sd[0]
    assert sd[2] > sd[0]


def test_statistics_round_trip_and_ignore_other_widths() -> None:
    x, actions, _, rewards = _simulate(100, seed=3)
    stats = accumulate(SPACE.dim, actions, x, np.ones(100), rewards, 2)
    rows = {"a": stats.row(0), "b": stats.row(1), "gone": stats.row(0), "c": np.zeros(5)}
    back = ContextualStats.from_rows(["a", "b", "c"], SPACE.dim, rows)
    assert np.array_equal(back.gram[:2], stats.gram)
    assert back.n[2] == 0


def test_control_buckets_are_stable_and_uniform() -> None:
    assert control_bucket("c-1") == control_bucket("c-1")
    buckets = np.array([control_bucket(f"c-{i}") for i in range(20000)])
    assert abs((buckets < 0.1).mean() - 0.1) < 4 * math.sqrt(0.09 / 20000)


def test_lift_against_hand_computed_values() -> None:
    out = lift((1000.0, 200.0), (400.0, 60.0))
    assert out["difference"] == pytest.approx(0.05)
    assert out["relative"] == pytest.approx(0.2 / 0.15 - 1)
    se = math.sqrt(0.2 * 0.8 / 1000 + 0.15 * 0.85 / 400)
    assert out["difference_95"] == pytest.approx([0.05 - 1.959964 * se, 0.05 + 1.959964 * se])
    assert lift((0.0, 0.0), (10.0, 1.0)) == {"difference": None, "relative": None}


ROOT = Path(__file__).resolve().parents[2]


def _policy_with(tmp_path: Path, learning_extra: str) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", target)
    policy = target / "policy.yaml"
    text = policy.read_text().replace("  refresh_seconds: 1.0\n", "  refresh_seconds: 1.0\n" + learning_extra)
    policy.write_text(text)
    return target


def test_learning_settings_per_channel_are_resolved(tmp_path: Path) -> None:
    rules = _policy_with(
        tmp_path,
        """  attribution_window: 3d
  channels:
    call_center: {exploration: 0.3, attribution_window: 2h, rewards: {interest: 0.5}}
    web: {model: contextual}
  contextual:
    features:
      - {attribute: plan, one_hot: [basic, medium, large, unlimited]}
      - {attribute: monthly_spend, buckets: [30, 60]}
      - {context: device, one_hot: [mobile, desktop]}
      - {segment: long_tenure}
  control: {share: 0.1, ordering: rules}
""",
    )
    learning = load_rulebook(rules).learning
    cc, web, app = (learning.for_channel(c) for c in ("call_center", "web", "app"))
    assert (cc.model, cc.exploration, cc.attribution_window, cc.rewards["interest"], cc.rewards["accept"]) == (
        "thompson",
        0.3,
        7200.0,
        0.5,
        1.0,
    )
    assert (web.model, web.exploration, web.attribution_window) == ("contextual", 1.0, 3 * 86400.0)
    assert app.rewards["interest"] == 0.3
    assert learning.features.dim == 1 + 4 + 3 + 2 + 1
    assert learning.control is not None
    assert (learning.control.share, learning.control.ordering) == (0.1, "rules")


def test_exploration_zero_for_every_channel_is_kept(tmp_path: Path) -> None:
    learning = load_rulebook(
        _policy_with(tmp_path, "  exploration: 0\n  channels:\n    web: {exploration: 0.5}\n")
    ).learning
    assert [learning.for_channel(c).exploration for c in ("app", "call_center", "web")] == [0.0, 0.0, 0.5]


def test_the_old_probability_draws_setting_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(RulesInvalid, match=r"learning.probability_draws.*integrated exactly; remove this line"):
        load_rulebook(_policy_with(tmp_path, "  probability_draws: 256\n"))


def test_learning_mistakes_are_reported_with_their_key(tmp_path: Path) -> None:
    rules = _policy_with(
        tmp_path,
        """  channels:
    fax: {exploration: 0.3}
    web: {model: neural, exploration: 3}
  contextual:
    features:
      - {attribute: plann, one_hot: [basic]}
      - {attribute: monthly_spend, one_hot: [a]}
      - {attribute: plan, buckets: [3, 2]}
      - {context: device}
      - {segment: nobody}
  control: {share: 0.9}
""",
    )
    with pytest.raises(RulesInvalid) as info:
        load_rulebook(rules)
    text = str(info.value)
    for expected in (
        "learning.channels.fax",
        "unknown model 'neural'",
        "learning.channels.web.exploration",
        "unknown attribute 'plann'",
        "features[1].one_hot",
        "features[2].buckets",
        "features[3]",
        "unknown segment 'nobody'",
        "learning.control.share",
    ):
        assert expected in text, (expected, text)
