"""The demo's simulated world: when demo customers come by on which channel, and how each of them truly
answers each action there. Pure (numpy; randomness is the caller's generator), so that the traffic the
demo seeds (customers/demo_traffic.py) is reproducible and gives the learner something real to find:
some offers are clearly better than others, some customers answer better, channels differ, and visits
follow the day.

The world knows the shipped telecom's actions by id; an action of another rule set gets a base rate of
its own from a hash of its id, so any rule set shows offers that differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# How often an impression of each shipped action is accepted on the web, by an average customer: from the
# quote a customer asked for (far better than any cold offer) down to TV for someone who never wanted it.
BASE_ACCEPT: Mapping[str, float] = {
    "quote-follow-up": 0.22,
    "complaint-follow-up": 0.25,
    "bill-explanation": 0.18,
    "cheaper-plan-advice": 0.14,
    "loyalty-gift": 0.16,
    "setup-help": 0.10,
    "data-upgrade": 0.09,
    "welcome-new-customer": 0.08,
    "email-capture": 0.07,
    "sim-only": 0.06,
    "fiber-upgrade": 0.05,
    "crosssell-consent-request": 0.05,
    "winter-roaming": 0.04,
    "broadband-bundle": 0.035,
    "tv-addon": 0.02,
}
# an agent on the phone persuades better than a banner; an e-mail is read less than an app screen
CHANNEL_ACCEPT: Mapping[str, float] = {"call_center": 1.6, "app": 1.15, "web": 1.0, "email": 0.6}
# "no, thanks": a button on a screen, the answer an agent writes down; nobody replies "no" to an e-mail
REJECT: Mapping[str, float] = {"call_center": 0.45, "app": 0.2, "web": 0.15, "email": 0.0}
# a click that does not end in an accept, per accept (a phone call has nothing to click)
CLICK_PER_ACCEPT: Mapping[str, float] = {"call_center": 0.0, "app": 1.5, "web": 1.5, "email": 2.0}
MOST_ACCEPT = 0.6

# Visits per customer per day on each channel (before the customer's own inclination, visit_rates), and
# how they spread over the local hours of a day: the web and the app by day and in the evening, the call
# center during opening hours, tonight's e-mail run in one morning hour.
DAILY_VISITS: Mapping[str, float] = {"web": 0.35, "app": 0.25, "call_center": 0.04, "email": 0.3}
_DAY_CURVE: Mapping[str, tuple[float, ...]] = {
    "web": (2, 1, 1, 1, 1, 2, 5, 10, 14, 15, 15, 15, 17, 15, 14, 14, 15, 17, 20, 23, 24, 20, 12, 6),
    "app": (3, 1, 1, 1, 1, 3, 8, 16, 14, 10, 9, 10, 14, 11, 10, 10, 12, 16, 18, 20, 22, 20, 14, 7),
    "call_center": (0, 0, 0, 0, 0, 0, 0, 0, 8, 12, 12, 11, 8, 9, 10, 10, 9, 8, 6, 5, 0, 0, 0, 0),
    "email": (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
}
DAY_CURVE: Mapping[str, np.ndarray] = {ch: np.array(c, float) / sum(c) for ch, c in _DAY_CURVE.items()}


@dataclass(frozen=True)
class Odds:
    """The true chances of each answer to one impression (the rest: no answer at all)."""

    accept: float
    reject: float
    click: float  # clicked, and did not accept (an accept on a screen comes with its own click)


@dataclass(frozen=True)
class Visit:
    at: float  # seconds after the start of its hour
    customer: int  # index into the population
    channel: str
    context: dict[str, str]


def base_accept(action_id: str) -> float:
    """The shipped action's rate, or a stable one from 2% to 14% for an action the world does not know."""
    known = BASE_ACCEPT.get(action_id)
    if known is not None:
        return known
    digest = hashlib.blake2b(action_id.encode(), digest_size=8, person=b"nba-demo").digest()
    return 0.02 + 0.12 * int.from_bytes(digest, "big") / 2.0**64


def odds(attrs: Mapping[str, Any], action_id: str, group: str, channel: str, hour: int) -> Odds:
    """How this customer answers this action on this channel at this local hour."""
    accept = base_accept(action_id) * CHANNEL_ACCEPT.get(channel, 1.0)
    spend = _number(attrs.get("monthly_spend"))
    age = _number(attrs.get("age"))
    if group == "sales":  # who spends more buys more; a small budget says no more often
        accept *= 1.5 if spend >= 60 else 0.6 if spend < 30 else 1.0
    if group == "retention" and _number(attrs.get("tenure_months")) >= 36:
        accept *= 1.4  # loyal customers like being thanked
    if channel == "app" and age:  # the young use the app and answer there; the old answer the phone
        accept *= 1.3 if age < 35 else 0.7 if age >= 60 else 1.0
    if channel == "call_center" and age >= 60:
        accept *= 1.3
    if attrs.get("open_complaint") is True and group != "service":
        accept *= 0.5
    accept *= 1.1 if 18 <= hour < 23 else 0.85 if hour < 7 else 1.0  # an evening browse is a relaxed one
    accept = min(accept, MOST_ACCEPT)
    reject = REJECT.get(channel, 0.15) * (1.3 if group == "sales" else 0.5 if group == "service" else 1.0)
    reject = min(reject, 1.0 - accept)
    click = min(accept * CLICK_PER_ACCEPT.get(channel, 1.0), 1.0 - accept - reject)
    return Odds(accept, reject, click)


def answer(rng: np.random.Generator, o: Odds) -> str | None:
    """One impression's answer drawn from its odds: accept, reject, click, or None (no answer)."""
    u = float(rng.random())
    if u < o.accept:
        return "accept"
    if u < o.accept + o.reject:
        return "reject"
    if u < o.accept + o.reject + o.click:
        return "click"
    return None


def visit_rates(attrs: Mapping[str, Any]) -> dict[str, float]:
    """Visits per day of this customer on each channel: broadband customers browse more, the young use the
    app, an open complaint or request makes people call; e-mail only with consent and an address."""
    products = attrs.get("products") or []
    age = _number(attrs.get("age")) or 45.0
    consents = attrs.get("consents")
    email_consent = isinstance(consents, dict) and consents.get("email") is True
    calls = 1.0 + 4.0 * (attrs.get("open_complaint") is True) + 2.0 * bool(attrs.get("open_request"))
    return {
        "web": DAILY_VISITS["web"] * (1.4 if "broadband" in products else 1.0),
        "app": DAILY_VISITS["app"] * (1.6 if age < 35 else 1.0 if age < 60 else 0.3),
        "call_center": DAILY_VISITS["call_center"] * calls * (1.5 if age >= 60 else 1.0),
        "email": DAILY_VISITS["email"] * (email_consent and bool(attrs.get("email"))),
    }


def hour_visits(rng: np.random.Generator, rates: Mapping[str, np.ndarray], hour: int) -> list[Visit]:
    """The visits of one hour (local `hour`), in time order. `rates`: per channel, every customer's daily
    visits (visit_rates); each customer's visits in the hour are Poisson with its share of the day."""
    visits: list[Visit] = []
    for channel in sorted(rates):
        curve = DAY_CURVE.get(channel)
        share = float(curve[hour]) if curve is not None else 1 / 24
        if share <= 0:
            continue
        counts = rng.poisson(rates[channel] * share)
        for customer in np.flatnonzero(counts).tolist():
            for _ in range(int(counts[customer])):
                visits.append(Visit(float(rng.uniform(0, 3600)), customer, channel, _context(rng, channel)))
    visits.sort(key=lambda v: v.at)
    return visits


def daily_rates(population: Sequence[Mapping[str, Any]], channels: Sequence[str]) -> dict[str, np.ndarray]:
    """visit_rates of every customer, as one array per channel (channels the rules do not have left out)."""
    per = [visit_rates(attrs) for attrs in population]
    return {ch: np.array([r.get(ch, 0.0) for r in per]) for ch in channels if ch in DAILY_VISITS}


def _context(rng: np.random.Generator, channel: str) -> dict[str, str]:
    """What a channel tells about the visit: the device on the web, the reason of a call or page."""
    if channel == "web":
        ctx = {"device": "mobile" if rng.random() < 0.55 else "desktop"}
        if rng.random() < 0.1:
            ctx["reason"] = "billing"
        return ctx
    if channel == "app":
        return {"device": "mobile"}
    if channel == "call_center":
        return {"reason": "billing"} if rng.random() < 0.3 else {}
    return {}


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
