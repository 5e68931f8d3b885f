"""Why each action was or was not proposed: the stage that removed it (channel, validity, pause, the
channel gate, the eligibility layer and condition that failed, the contact cap, the per-contact limit) or
its score components, for programs (`stage`, `reason`, `rule`, `components`), and the same in a sentence
for people (`why`: the rule, segment, cap and numbers involved, rules/plain.py's words). Built only when
a request asks for it (`explain: true`): a Python loop over the actions, off the hot path."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from nba.decision import contact_policy
from nba.decision.arbitration import do_nothing
from nba.decision.beliefs import beliefs_for
from nba.domain import FloatArray
from nba.learning.snapshot import Snapshot
from nba.rules.conditions import Facts, first_failure
from nba.rules.plain import failing
from nba.rules.rulebook import Action, Rulebook

if TYPE_CHECKING:  # the stage values are rank.py's; rank imports this module
    from nba.decision.rank import Order, Screen, Who


def explain(snap: Snapshot, person: Who, gates: Screen, ordering: Order) -> list[dict[str, Any]]:
    """Per action of the rule set: the stage that removed it, or its score components."""
    rb = snap.rulebook
    cap_reasons = contact_policy.reasons(rb.caps, gates.row_counts, gates.channel, rb.group_of, rb.mandatory)
    means = beliefs_for(snap, ordering.model, 0.0, np.arange(len(rb.actions)), person.key, ordering.x).mean
    out: list[dict[str, Any]] = []
    bar = _bar(rb, gates, ordering)
    for i, action in enumerate(rb.actions):
        item: dict[str, Any] = {"action_id": action.id, "rule": action.file, "eligible": bool(gates.eligible[i])}
        item |= _removed(rb, i, action, person, gates, cap_reasons) or _scored(snap, i, action, person, ordering, means)
        item["why"] = _sentence(rb, i, action, person, gates, item, bar)
        out.append(item)
    return out


def _bar(rb: Rulebook, gates: Screen, ordering: Order) -> float | None:
    """The do-nothing score this decision's actions had to beat (with the capacity price), if any."""
    bar = do_nothing(rb.lever[gates.candidates], rb.no_action[gates.candidates])
    return None if bar is None else bar + ordering.price


def _sentence(
    rb: Rulebook, i: int, action: Action, person: Who, gates: Screen, item: dict[str, Any], bar: float | None
) -> str:
    """The item in a sentence a call-center agent can read out."""
    name, stage = f"{action.name} ({action.id})", item["stage"]
    channel = list(rb.channels)[gates.channel]
    if stage == "channel":
        return f"{name} is not offered on {channel}; it is for {', '.join(action.channels)} ({action.file})."
    if stage == "validity":
        return f"{name} is not running now: see `active` in {action.file}."
    if stage == "paused":
        return f"{name} is paused: its weight is 0 in {action.file}."
    if gates.gate is not None and stage == gates.gate[0]:  # the channel's own consent or quiet hours
        when = "now" if stage == "quiet_hours" else "to this customer"
        return f"Nothing goes out on {channel} {when}: {item['reason']}."
    if stage in ("consent", "eligibility", "applicability", "suitability"):
        return f"{name} {_layer_words(action, person, rb)} (rule: {item['rule']})."
    if stage == "contact_policy":
        return f"{name} is held back by the contact policy: {item['reason']}."
    if stage == "contact_limit" and rb.contact is not None:
        return (
            f"{name} is not proposed: this contact already had {rb.contact.max_actions} actions, the most "
            f"policy.yaml allows in one contact."
        )
    c = item.get("components", {})
    score = c.get("propensity", 0.0) * c.get("value", 0.0) * c.get("weight", 0.0)
    terms = (
        f"an estimated {c.get('propensity', 0.0):.1%} chance of acceptance x value {c.get('value', 0.0):g} "
        f"x weight {c.get('weight', 0.0):g} = {score:.3g}"
    )
    if stage == "ranked":
        return (
            f"{name} is proposed at rank {item['rank']}: {terms} (with this decision's sampling: "
            f"{item['components']['score']:.3g})."
        )
    if stage == "threshold":
        text = (
            f"Doing nothing scores {c.get('value', 0.0) * c.get('weight', 0.0):.3g}: an action must beat it to be shown"
        )
        return text + (
            f", plus the channel's capacity price {c['capacity_price']:.3g} today." if "capacity_price" in c else "."
        )
    if bar is not None and score <= bar:
        return f"{name} is not proposed: {terms}, below doing nothing ({bar:.3g})."
    return f"{name} is not proposed: {terms}; with this decision's sampling others scored higher."


def _layer_words(action: Action, person: Who, rb: Rulebook) -> str:
    """Why the first failing layer of an action fails, in words."""
    for stage, _source, cond in action.layers:
        why = failing(cond, person.facts, rb.segment_labels)
        if why is not None:
            if stage == "consent":
                return f"needs the customer's consent for {action.purpose}, which they have not given"
            return why
    return "is not eligible"


def _removed(
    rb: Rulebook, i: int, action: Action, person: Who, gates: Screen, cap_reasons: dict[int, str]
) -> dict[str, str] | None:
    """The stage that removed action `i` before ranking, in the order the stages run; None if none did."""
    now = person.facts.now
    if not rb.channel_ok[i, gates.channel]:
        return {"stage": "channel", "reason": f"not offered on {list(rb.channels)[gates.channel]}"}
    if not rb.active_from[i] <= now < rb.active_until[i]:
        return {"stage": "validity", "reason": "outside its active dates"}
    if rb.weight[i] <= 0:
        return {"stage": "paused", "reason": "weight is 0"}
    if gates.gate is not None:
        return {"stage": gates.gate[0], "reason": gates.gate[1]}
    if not gates.eligible[i]:
        return _failed_layer(action, person.facts)
    if gates.capped[i]:
        return {"stage": "contact_policy", "reason": cap_reasons.get(i, "capped")}
    if gates.contact_full and rb.contact is not None:
        return {
            "stage": "contact_limit",
            "reason": f"policy.yaml: contact: this contact already had {rb.contact.max_actions} actions",
        }
    return None


def _scored(snap: Snapshot, i: int, action: Action, person: Who, ordering: Order, means: FloatArray) -> dict[str, Any]:
    """A candidate's score components, and where arbitration left it."""
    rb, model, key, ranking = snap.rulebook, snap.model, person.key, ordering.ranking
    components = {
        "propensity": float(means[i]),
        "model": ordering.model,
        "value": float(rb.value[i]),
        "weight": float(rb.weight[i]),
        "segment_key": rb.learning.keys[key],
        "trials": float(model.trials[i, key]),
        "rewards": float(model.rewards[i, key]),
    }
    placed = np.flatnonzero(ranking.actions == i)
    if placed.size:
        r = int(placed[0])
        components |= {"draw": float(ranking.draw[r]), "score": float(ranking.score[r])}
        return {"stage": "ranked", "rank": r + 1, "components": components}
    if action.kind == "no_action":
        reason = "do-nothing threshold, never shown itself"
        if ordering.price > 0:
            components["capacity_price"] = ordering.price
            reason += (
                f"; raised by the channel's capacity price {ordering.price:.4g} (its latest outbound run): an "
                "action is shown only when it beats doing nothing by that much"
            )
        return {"stage": "threshold", "reason": reason, "components": components}
    if i not in ranking.contenders:
        reason = "cannot reach the top: even its best possible score is below what others are sure to get"
    else:
        reason = "ranked below the limit or the do-nothing threshold"
    return {"stage": "arbitration", "reason": reason, "components": components}


def _failed_layer(action: Action, facts: Facts) -> dict[str, str]:
    for stage, source, cond in action.layers:
        file, _, key = source.partition(": ")
        why = first_failure(cond, facts, key)
        if why is not None:
            return {"stage": stage, "reason": why, "rule": file}
    return {"stage": "eligibility", "reason": "not eligible"}
