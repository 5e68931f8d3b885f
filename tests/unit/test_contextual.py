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
from nba.learning.contextual import ContextualModel, ContextualStats, accumulate, noise_variances
from nba.learning.features import encode, pack, unpack
from nba.rules.features import Feature, FeatureSpace
from nba.rules.load import load_rulebook
from tests.conftest import RULES

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


def _policy_with(tmp_path: Path, learning_extra: str) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(RULES, target)  # the tests' frozen copy: the shipped rules change (a control group)
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


def test_a_half_life_is_a_duration_of_at_least_a_minute(tmp_path: Path) -> None:
    assert load_rulebook(_policy_with(tmp_path, "  half_life: 14d\n")).learning.half_life == 14 * 86400.0
    for i, (bad, message) in enumerate((("30s", "at least 1m"), ("14", "must be a duration"))):
        with pytest.raises(RulesInvalid, match=rf"learning.half_life.*{message}"):
            load_rulebook(_policy_with(tmp_path / str(i), f"  half_life: {bad}\n"))


def test_a_cross_is_one_column_per_pair_of_its_features_columns(tmp_path: Path) -> None:
    space = load_rulebook(
        _policy_with(
            tmp_path,
            """  contextual:
    features:
      - {attribute: plan, one_hot: [basic, large]}
      - {context: device, one_hot: [mobile, desktop]}
      - {cross: [device, plan]}
""",
        )
    ).learning.features
    assert space.dim == 1 + 2 + 2 + 4
    assert space.column_names()[5:] == [
        "context:device=mobile*attribute:plan=basic",
        "context:device=mobile*attribute:plan=large",
        "context:device=desktop*attribute:plan=basic",
        "context:device=desktop*attribute:plan=large",
    ]
    x = encode(space, {"plan": "large"}, {"device": "desktop"}, set())
    assert x.tolist() == [1, 0, 1, 0, 1, 0, 0, 0, 1]
    assert encode(space, {}, {"device": "desktop"}, set()).tolist() == [1, 0, 0, 0, 1, 0, 0, 0, 0]


@pytest.mark.parametrize(
    ("cross", "message"),
    [
        ("[devise, plan]", r"features\[2\].cross\[0\]: 'devise' is not a declared feature \(did you mean 'device'\?\)"),
        ("[plan]", r"features\[2\].cross: must name two features"),
        ("[plan, plan]", r"features\[2\].cross: must name two different features"),
    ],
)
def test_crosses_that_cannot_be_built_are_refused_by_name(tmp_path: Path, cross: str, message: str) -> None:
    extra = f"""  contextual:
    features:
      - {{attribute: plan, one_hot: [basic, large]}}
      - {{context: device, one_hot: [mobile, desktop]}}
      - {{cross: {cross}}}
"""
    with pytest.raises(RulesInvalid, match=message):
        load_rulebook(_policy_with(tmp_path, extra))


def test_more_than_128_columns_are_refused(tmp_path: Path) -> None:
    values = ", ".join(f"v{i}" for i in range(12))
    extra = f"""  contextual:
    features:
      - {{context: a, one_hot: [{values}]}}
      - {{context: b, one_hot: [{values}]}}
      - {{cross: [a, b]}}
"""
    with pytest.raises(RulesInvalid, match=r"learning.contextual.features: 169 columns .* at most 128"):
        load_rulebook(_policy_with(tmp_path, extra))


def test_noise_variances_are_learned_from_each_actions_reward_rate() -> None:
    stats = ContextualStats.zeros(3, 2)
    stats.n[:] = [10_000, 10, 0]
    stats.b[:, 0] = [200, 5, 0]  # 2%, 50% of only 10, nothing yet
    var = noise_variances(stats, np.array([0, 0, 0]), 1, np.full(3, 0.05))
    group = (205 + 20 * 0.05) / (10_010 + 20)
    assert var[0] == pytest.approx(0.02 * 0.98, rel=0.01)
    rate = (5 + 20 * group) / 30
    assert var[1] == pytest.approx(rate * (1 - rate))  # drawn towards the group's 2%
    assert var[2] == pytest.approx(group * (1 - group))


def test_a_learned_noise_variance_learns_a_rare_offer_faster_than_a_fixed_guess() -> None:
    rng = np.random.default_rng(5)
    n = 3000
    x = np.column_stack([np.ones(n), rng.random(n) < 0.5])
    p = np.where(x[:, 1] == 1, 0.04, 0.01)
    stats = accumulate(2, np.zeros(n, np.int64), x, np.ones(n), (rng.random(n) < p).astype(float), 2)
    learned = ContextualModel.build(stats, np.array([0, 1]), 2, np.array([0.02, 0.02]), 0.05, None)
    fixed = ContextualModel.build(stats, np.array([0, 1]), 2, np.array([0.02, 0.02]), 0.05, 0.1)
    sd_learned = np.sqrt(np.diagonal(learned.cov[0]))
    sd_fixed = np.sqrt(np.diagonal(fixed.cov[0]))
    assert np.all(sd_learned < 0.6 * sd_fixed)  # 2% answers carry five times the information 0.1 assumed
    assert abs(learned.mean[0, 1] - 0.03) < 0.015
