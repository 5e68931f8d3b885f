"""`nba rules test`: the shipped cases pass and name every action; failures read well."""

from __future__ import annotations

from pathlib import Path

import pytest

from nba.cli import rules_test
from nba.evaluation.rule_tests import run_all, uncovered
from nba.rules.load import load_rulebook
from tests.conftest import SHIPPED_RULES


def test_shipped_cases_pass_and_cover_every_action() -> None:
    rulebook = load_rulebook(SHIPPED_RULES)
    outcomes, problems = run_all(rulebook, SHIPPED_RULES)
    assert problems == []
    assert len(outcomes) >= 15
    assert [str(o) for o in outcomes if o.failures] == []
    assert uncovered(rulebook, outcomes) == []


def test_a_failing_case_says_what_and_why(rules_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (rules_copy / "tests" / "extra.yaml").write_text(
        """\
now: 2026-11-23T12:00:00Z
cases:
  - name: marketer expects tv for a mobile-only customer
    channel: web
    profile: {products: [mobile], consents: {crosssell: true}, monthly_spend: 25, email: a@example.nl}
    expect: {first: tv-addon, excludes: [broadband-bundle]}
""",
        encoding="utf-8",
    )
    assert rules_test(rules_copy) == 1
    out = capsys.readouterr().out
    assert "FAIL  tests/extra.yaml:3: marketer expects tv for a mobile-only customer" in out
    assert (
        "expected tv-addon first (eligibility: eligible_when.all[0]: in_segment broadband_customer does not "
        "hold)" in out
    )
    assert "expected broadband-bundle not in the result, it is at rank 1" in out
    assert "24 passed, 1 failed" in out


def test_invalid_cases_are_reported_with_lines(rules_copy: Path) -> None:
    (rules_copy / "tests" / "bad.yaml").write_text(
        """\
cases:
  - name: typo
    channel: webb
    profile: {prodcts: [mobile]}
    history: [{type: impresion, action: broadband-bundel, ago: 2}]
    expect: {first: broadband-bundel}
""",
        encoding="utf-8",
    )
    rb = load_rulebook(rules_copy)
    _, problems = run_all(rb, rules_copy)
    text = "\n".join(str(p) for p in problems)
    assert "tests/bad.yaml:3: cases[0].channel: unknown channel 'webb' (did you mean 'web'?)" in text
    assert "tests/bad.yaml:4: cases[0].profile.prodcts: unknown attribute" in text
    assert "cases[0].history[0].type: unknown event type 'impresion' (did you mean 'impression'?)" in text
    assert "cases[0].history[0].action: unknown action 'broadband-bundel' (did you mean 'broadband-bundle'?)" in text
    assert "cases[0].history[0].ago: must be a duration" in text
    assert "tests/bad.yaml:6: cases[0].expect.first: unknown action 'broadband-bundel'" in text
