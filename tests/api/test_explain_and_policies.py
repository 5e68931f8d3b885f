"""Explanations name the stage, rule file and key that removed each action; per-contact limits."""

from __future__ import annotations

from typing import Any

from tests.api.helpers import CROSSSELL_MOBILE, Client, decide, put_customer, send_events


def _by_action(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["action_id"]: e for e in body["explain"]}


async def test_explain_names_the_stage_and_rule(client: Client) -> None:
    attrs = CROSSSELL_MOBILE | {"consents": {"crosssell": False}, "last_purchase_at": "2026-11-20"}
    await put_customer(client, "c-1", attrs)
    body = await decide(client, "c-1", "call_center", explain=True)
    ex = _by_action(body)
    assert set(ex) == {a for a in (await (await client.get("/v1/rules")).json())["actions"] for a in [a["id"]]}
    assert ex["winter-roaming"]["stage"] == "channel"
    assert ex["tv-addon"] == ex["tv-addon"] | {
        "stage": "eligibility",
        "rule": "actions/tv-addon.yaml",
        "reason": "eligible_when.all[0]: in_segment broadband_customer does not hold",
    }
    # the sales group's suitability layer in policy.yaml: a recent buyer is not sold to
    assert ex["broadband-bundle"]["stage"] == "suitability"
    assert ex["broadband-bundle"]["rule"] == "policy.yaml"
    assert ex["broadband-bundle"]["reason"] == "groups.sales.suitable_when.none[1]: in_segment recent_buyer holds"
    ranked = sorted((e for e in body["explain"] if e["stage"] == "ranked"), key=lambda e: e["rank"])
    assert [e["action_id"] for e in ranked] == [a["action_id"] for a in body["actions"]]
    assert set(ranked[0]["components"]) >= {"propensity", "value", "weight", "draw", "score", "segment_key"}
    # and in a sentence a person reads (the tests' rules have no labels: conditions in words)
    assert ex["tv-addon"]["why"] == (
        "TV bij je internet (tv-addon) is only for customers whose products include broadband; this one is not "
        "(rule: actions/tv-addon.yaml)."
    )
    assert ex["broadband-bundle"]["why"] == (
        "Breedband bij je mobiele abonnement (broadband-bundle) is not for customers whose last purchase at was "
        "less than 30 days ago, and this one is (rule: policy.yaml)."
    )
    assert ex["winter-roaming"]["why"].endswith(
        "is not offered on call_center; it is for web, app, email (actions/winter-roaming.yaml)."
    )
    first = ranked[0]
    assert f"is proposed at rank 1: an estimated {first['components']['propensity']:.1%} chance" in first["why"]
    assert ex["no-action"]["why"] == "Doing nothing scores 0.3: an action must beat it to be shown."


async def test_a_closed_channel_is_explained_as_the_channels(client: Client) -> None:
    await put_customer(client, "c-5", CROSSSELL_MOBILE | {"consents": {"crosssell": True, "email": False}})
    ex = _by_action(await decide(client, "c-5", "email", explain=True))
    assert ex["tv-addon"]["stage"] == "consent"
    assert ex["tv-addon"]["why"] == (
        "Nothing goes out on email to this customer: no email consent for the email channel."
    )


async def test_explain_purpose_consent_and_caps_with_counts(client: Client) -> None:
    await put_customer(client, "c-2", CROSSSELL_MOBILE | {"consents": {"crosssell": False}})
    ex = _by_action(await decide(client, "c-2", explain=True))
    assert ex["broadband-bundle"]["stage"] == "consent"
    assert ex["broadband-bundle"]["reason"] == "purpose: profile.consents.crosssell eq True does not hold"
    assert ex["broadband-bundle"]["why"] == (
        "Breedband bij je mobiele abonnement (broadband-bundle) needs the customer's consent for crosssell, which "
        "they have not given (rule: actions/broadband-bundle.yaml)."
    )

    await put_customer(client, "c-3", CROSSSELL_MOBILE)
    await send_events(
        client,
        [
            {
                "event_id": f"i{k}",
                "type": "impression",
                "customer_id": "c-3",
                "action_id": "broadband-bundle",
                "channel": "web",
            }
            for k in range(3)
        ],
    )
    ex = _by_action(await decide(client, "c-3", explain=True))
    assert ex["broadband-bundle"]["stage"] == "contact_policy"
    assert ex["broadband-bundle"]["reason"] == (
        "actions/broadband-bundle.yaml: limits[0]: 3 x impression in the last 1w reaches the limit of 3"
    )
    assert ex["broadband-bundle"]["why"] == (
        "Breedband bij je mobiele abonnement (broadband-bundle) is held back by the contact policy: "
        "actions/broadband-bundle.yaml: limits[0]: 3 x impression in the last 1w reaches the limit of 3."
    )


async def test_actions_per_contact_are_limited_across_decisions(client: Client) -> None:
    await put_customer(client, "c-4", CROSSSELL_MOBILE | {"products": ["mobile", "broadband"], "tenure_months": 50})
    total = 0
    for _ in range(20):  # policy.yaml: contact: max_actions 4; a decision may return fewer than asked
        d = await decide(client, "c-4", "call_center", contact_id="call-1", limit=3)
        total += len(d["actions"])
        assert total <= 4
        if total == 4:
            break
    assert total == 4
    third = await decide(client, "c-4", "web", contact_id="call-1", limit=3, explain=True)
    assert third["actions"] == []
    limited = [e for e in third["explain"] if e["stage"] == "contact_limit"]
    assert limited
    assert limited[0]["why"].endswith(
        "is not proposed: this contact already had 4 actions, the most policy.yaml allows in one contact."
    )
    other_contact = await decide(client, "c-4", "web", contact_id="visit-2", limit=3, explain=True)
    assert not any(e["stage"] == "contact_limit" for e in other_contact["explain"])


async def test_reasons_are_filled_from_the_profile(client: Client) -> None:
    await put_customer(
        client,
        "c-5",
        {
            "products": ["mobile"],
            "plan": "unlimited",
            "usage_gb": 2.5,
            "monthly_spend": 55.0,
            "tenure_months": 20,
            "email": "x@example.nl",
        },
    )
    body = await decide(client, "c-5", "call_center", limit=5)
    advice = next(a for a in body["actions"] if a["action_id"] == "cheaper-plan-advice")
    assert advice["reason"] == (
        "Heeft unlimited maar gebruikt gemiddeld 2.5 GB per maand (betaalt 55 euro): adviseer een kleiner abonnement."
    )
