"""The demo's simulated world (customers/demo_world.py) differs where the learner should find something:
offers, segments, channels, hours; and visits follow the day."""

from __future__ import annotations

from typing import Any

import numpy as np

from nba.customers import demo_world as world


def test_the_world_has_better_offers_segments_and_hours() -> None:
    rich = {"monthly_spend": 80.0, "tenure_months": 48, "age": 30}
    poor = {"monthly_spend": 20.0, "tenure_months": 2, "age": 70}

    def accept(who: dict[str, Any], action: str, group: str, channel: str = "web", hour: int = 12) -> float:
        return world.odds(who, action, group, channel, hour).accept

    assert accept(rich, "quote-follow-up", "sales") > 5 * accept(rich, "tv-addon", "sales")  # clearly better
    assert accept(rich, "tv-addon", "sales") > accept(poor, "tv-addon", "sales")  # some segments respond better
    assert accept(rich, "loyalty-gift", "retention", "app") > accept(poor, "loyalty-gift", "retention", "app")
    assert accept(rich, "tv-addon", "sales", "call_center") > accept(rich, "tv-addon", "sales")
    assert accept(rich, "tv-addon", "sales", hour=20) > accept(rich, "tv-addon", "sales", hour=3)
    for channel in ("web", "app", "call_center", "email"):
        o = world.odds(rich, "quote-follow-up", "sales", channel, 12)
        assert o.accept > 0
        assert min(o.reject, o.click) >= 0
        assert o.accept + o.reject + o.click <= 1
    # an action the world does not know gets a rate of its own, the same every time
    assert world.base_accept("made-up") == world.base_accept("made-up")
    assert 0.02 <= world.base_accept("made-up") <= 0.14
    # the day's curve: more visits in the evening than at night, no calls when the call center is closed
    rates = {"web": np.full(1000, 0.5), "call_center": np.full(1000, 0.5)}
    rng = np.random.default_rng(1)
    evening, night = world.hour_visits(rng, rates, 20), world.hour_visits(rng, rates, 3)
    assert len(evening) > 3 * len(night)
    assert not [v for v in night if v.channel == "call_center"]
    assert [v.at for v in evening] == sorted(v.at for v in evening)
    # who gets e-mail: only with consent and an address
    assert world.visit_rates({"consents": {"email": True}, "email": "a@b.nl"})["email"] > 0
    assert world.visit_rates({"consents": {"email": False}, "email": "a@b.nl"})["email"] == 0
    assert world.visit_rates({"consents": {"email": True}})["email"] == 0
