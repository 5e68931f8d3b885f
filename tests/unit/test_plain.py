"""Conditions in plain words (nba/rules/plain.py): what explanations say to a person."""

from __future__ import annotations

from nba.rules.conditions import Combine, DaysSince, Facts, FieldTest, InSegment
from nba.rules.plain import failing, phrase

NOW = 1795435200.0
LABELS = {"broadband_customer": "with broadband"}


def _facts(
    profile: dict[str, object], segments: set[str] | None = None, context: dict[str, object] | None = None
) -> Facts:
    return Facts(profile, context or {}, segments or set(), NOW)


def test_each_kind_of_condition_reads_as_a_phrase() -> None:
    assert phrase(InSegment("broadband_customer"), LABELS) == "with broadband"
    assert phrase(InSegment("heavy_data_user"), LABELS) == "in heavy data user"
    assert phrase(FieldTest("profile", ("monthly_spend",), "gte", 60), {}) == "whose monthly spend is at least 60"
    assert phrase(FieldTest("profile", ("consents", "email"), "eq", True), {}) == "whose email consent is yes"
    assert phrase(FieldTest("profile", ("plan",), "in", ("large", "unlimited")), {}) == (
        "whose plan is one of large, unlimited"
    )
    assert phrase(FieldTest("profile", ("email",), "exists", False), {}) == "whose email is not known"
    assert phrase(FieldTest("context", ("reason",), "eq", "billing"), {}) == "when the contact's reason is billing"
    assert phrase(DaysSince(("last_purchase_at",), "lt", 30), {}) == "whose last purchase at was less than 30 days ago"
    both = Combine("all", (InSegment("broadband_customer"), FieldTest("profile", ("usage_gb",), "lt", 5.0)))
    assert phrase(both, LABELS) == "with broadband and whose usage gb is less than 5"


def test_a_failing_condition_says_what_the_customer_has() -> None:
    spend = FieldTest("profile", ("monthly_spend",), "gte", 60)
    assert failing(spend, _facts({"monthly_spend": 45.5}), {}) == (
        "is only for customers whose monthly spend is at least 60; this one is not (it is 45.5)"
    )
    assert failing(spend, _facts({}), {}) == (
        "is only for customers whose monthly spend is at least 60; this one is not (not known)"
    )
    assert failing(spend, _facts({"monthly_spend": 70}), {}) is None
    excluded = Combine("none", (InSegment("open_complaint"), InSegment("broadband_customer")))
    assert failing(excluded, _facts({}, {"broadband_customer"}), LABELS) == (
        "is not for customers with broadband, and this one is"
    )
    either = Combine("any", (InSegment("broadband_customer"), FieldTest("context", ("reason",), "eq", "billing")))
    assert failing(either, _facts({}, set(), {"reason": "move"}), LABELS) == (
        "is only for customers with broadband or when the contact's reason is billing; this one is none of these"
    )
    assert failing(either, _facts({}, set(), {"reason": "billing"}), LABELS) is None
