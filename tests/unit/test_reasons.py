"""Reason templates: placeholders checked at load, filled from the profile, never failing."""

from __future__ import annotations

from nba.rules.files import Reader
from nba.rules.reasons import compile_reason, render

ATTRS = {"plan": "string", "usage_gb": "number", "products": "list", "consents": "flags", "open_complaint": "boolean"}


def _compile(text: str) -> tuple[object, list[str]]:
    reader = Reader("actions/x.yaml")
    template = compile_reason(text, ATTRS, reader, "reason", 7)  # type: ignore[arg-type]
    return template, [str(p) for p in reader.problems]


def test_fills_profile_values() -> None:
    template, problems = _compile("Heeft {plan}, {usage_gb} GB, {products}; mail: {consents.email} {{x}}")
    assert problems == []
    profile = {"plan": "large", "usage_gb": 2.50, "products": ["mobile", "tv"], "consents": {"email": True}}
    assert render(template, profile) == "Heeft large, 2.5 GB, mobile, tv; mail: ja {x}"  # type: ignore[arg-type]
    assert render(template, {}) == "Heeft ?, ? GB, ?; mail: ? {x}"  # type: ignore[arg-type]


def test_bad_placeholders_are_rule_problems() -> None:
    assert _compile("Heeft {plann}")[1] == [
        "actions/x.yaml:7: reason: unknown attribute 'plann' in {plann} (did you mean 'plan'?)"
    ]
    assert "must be a plain attribute name" in _compile("{plan:>10}")[1][0]
    assert "unbalanced braces" in _compile("Heeft {plan")[1][0]
