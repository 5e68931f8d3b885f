"""The shipped rules validate; broken rule files are reported as `file:line: key.path: message`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from nba.cli import rules_check
from nba.errors import RulesInvalid
from nba.rules.directory import directory_fingerprint
from nba.rules.load import load_rulebook, rules_files
from nba.rules.rulebook import Rulebook
from tests.conftest import RULES, SHIPPED_RULES


@pytest.fixture(scope="module")
def shipped() -> Rulebook:
    return load_rulebook(SHIPPED_RULES)


def test_shipped_rules_are_the_dutch_telecom(shipped: Rulebook) -> None:
    rulebook = shipped
    ids = {a.id for a in rulebook.actions}
    assert len(ids) >= 12
    assert {
        "broadband-bundle",
        "cheaper-plan-advice",
        "loyalty-gift",
        "complaint-follow-up",
        "bill-explanation",
        "email-capture",
        "no-action",
    } <= ids
    groups = {a.group for a in rulebook.actions}
    assert {"sales", "retention", "service", "data"} <= groups
    assert rulebook.actions[rulebook.action_index["no-action"]].kind == "no_action"
    assert rulebook.actions[rulebook.action_index["complaint-follow-up"]].mandatory
    kinds = {s.name: s.kind for s in rulebook.segments}
    assert kinds["recent_buyer"] == "dynamic"
    assert kinds["billing_contact"] == "context"
    assert kinds["triple_play"] == "profile"


def test_rules_check_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert rules_check(SHIPPED_RULES) == 0
    assert "ok" in capsys.readouterr().out


def _problems(rules: Path) -> list[str]:
    with pytest.raises(RulesInvalid) as exc:
        load_rulebook(rules)
    return [str(p) for p in exc.value.problems]


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def test_action_mistakes_are_all_reported_with_lines(rules_copy: Path) -> None:
    _write(
        rules_copy / "actions" / "broadband-bundle.yaml",
        """\
id: broadband-bundle
group: sales
channels: [web, fax]
value: 25
weigth: 2
active: {from: 2027-01-31, until: 2026-11-01}
eligible_when:
  all: [{in_segment: mobile_customr}, {field: monthly_spend, gt: lots}]
limits:
  - {count: impression, max: 3, per: 7}
  - {after: rejected, suppress_for: 30d}
""",
    )
    problems = _problems(rules_copy)
    f = "actions/broadband-bundle.yaml"
    assert f"{f}:3: channels[1]: unknown channel 'fax'" in problems[0] or any(
        p.startswith(f"{f}:3: channels[1]: unknown channel 'fax'") for p in problems
    )
    expected_prefixes = [
        f"{f}:5: weigth: unknown key (did you mean 'weight'?)",
        f"{f}:6: active.until: is before active.from",
        f"{f}:8: eligible_when.all[0].in_segment: unknown segment 'mobile_customr' (did you mean 'mobile_customer'?)",
        f"{f}:8: eligible_when.all[1].gt: must be a number",
        f"{f}:10: limits[0].per: must be a duration like 30m, 12h, 7d or 2w, got 7",
        f"{f}:11: limits[1]: unknown event type 'rejected' (did you mean 'reject'?)",
    ]
    for prefix in expected_prefixes:
        assert any(p.startswith(prefix) for p in problems), (prefix, problems)


def test_duplicate_action_ids(rules_copy: Path) -> None:
    (rules_copy / "actions" / "copy.yaml").write_text(
        (rules_copy / "actions" / "tv-addon.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    text = "\n".join(_problems(rules_copy))
    assert "actions/tv-addon.yaml:1: id: duplicate action id 'tv-addon', also in actions/copy.yaml" in text
    assert "actions/copy.yaml:1: id: id 'tv-addon' differs from the file name 'copy'" in text


def test_segment_mistakes_are_reported_once(rules_copy: Path) -> None:
    _write(
        rules_copy / "segments.yaml",
        """\
segments:
  a: {when: {in_segment: b}}
  b: {when: {in_segment: a}}
  mobile_customer: {when: {field: products, contains: mobile}}
  mobile_customer: {when: {field: products, contains: mobile}}
  tv_customer: {when: {field: prodcts, contains: tv}}
""",
    )
    problems = _problems(rules_copy)
    text = "\n".join(problems)
    assert "segments.yaml:2: segments.a: refers to itself through a -> b -> a" in text
    assert (
        "segments.yaml:6: segments.tv_customer.when.field: unknown profile attribute 'prodcts' "
        "(did you mean 'products'?)" in text
    )
    assert "segments.yaml:5: segments.mobile_customer: duplicate key (the later one would win)" in text
    # the segments the shipped actions use are gone too, and each action says so once per use
    assert all(p.startswith("segments.yaml") or "unknown segment" in p for p in problems), problems


def test_yaml_pitfalls(rules_copy: Path) -> None:
    _write(rules_copy / "channels.yaml", "channels:\n  web: {direction: inbound}\n  no: {direction: outbound}\n")
    _write(rules_copy / "policy.yaml", "groups: {sales: {}}\nlearning: {rewards: {accept: 2}}\n  bad indent\n")
    problems = _problems(rules_copy)
    text = "\n".join(problems)
    assert "channels.yaml:3: channels.False: keys must be text, got False" in text
    assert "policy.yaml:3: not valid YAML" in text


def test_missing_files_and_directory(tmp_path: Path) -> None:
    assert _problems(tmp_path / "nope") == [f"{tmp_path / 'nope'}: rules directory does not exist"]
    problems = _problems(tmp_path)
    assert {p.split(":")[0] for p in problems} >= {"channels.yaml", "profile.yaml", "segments.yaml", "policy.yaml"}


def test_rules_check_reports_and_fails(rules_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(rules_copy / "actions" / "tv-addon.yaml", "id: tv-addon\n")
    assert rules_check(rules_copy) == 1
    err = capsys.readouterr().err
    assert "actions/tv-addon.yaml:1: group: is required" in err


def test_the_directory_watch_sees_exactly_the_rule_files(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "actions" / "notes.txt").write_text("not a rule file")
    (rules / "actions" / "deeper").mkdir()
    (rules / "actions" / "deeper" / "x.yaml").write_text("id: x\n")
    (rules / "actions" / "tests").mkdir()  # only the top-level tests/ holds rule tests
    (rules / "actions" / "tests" / "y.yaml").write_text("id: y\n")
    (rules / "actions" / "loop").symlink_to(rules, target_is_directory=True)  # not followed, so no loop
    seen = directory_fingerprint(rules)
    assert [name for name, _, _ in seen] == [p.relative_to(rules).as_posix() for p in rules_files(rules)]
    assert any(name.startswith("tests/") for name, _, _ in seen) is False
    # an edit in place (same size, new time) and a new file are both changes
    target = rules / "actions" / "deeper" / "x.yaml"
    os.utime(target, ns=(1, 1))
    touched = directory_fingerprint(rules)
    assert touched != seen
    (rules / "segments.yaml").rename(rules / "segments2.yaml")
    assert directory_fingerprint(rules) != touched
    assert directory_fingerprint(tmp_path / "missing") == ()
