"""A seeded demo population of the Dutch telecom in rules/: realistic, varied, reproducible."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

PLANS = ("basic", "medium", "large", "unlimited")


def demo_customer(i: int, rng: np.random.Generator, today: dt.date) -> dict[str, Any]:
    products = [p for p, share in (("mobile", 0.8), ("broadband", 0.55), ("tv", 0.3)) if rng.random() < share]
    if not products:
        products = ["mobile"]
    attrs: dict[str, Any] = {
        "products": products,
        "tenure_months": int(rng.integers(0, 120)),
        "consents": {"crosssell": bool(rng.random() < 0.6), "email": bool(rng.random() < 0.5)},
        "open_complaint": bool(rng.random() < 0.05),
        "age": int(rng.integers(18, 85)),
    }
    if "mobile" in products:
        plan = PLANS[int(rng.choice(4, p=[0.3, 0.35, 0.2, 0.15]))]
        attrs["plan"] = plan
        scale = {"basic": 2, "medium": 5, "large": 6, "unlimited": 10}[plan]
        attrs["usage_gb"] = round(float(rng.gamma(2.0, scale)), 1)
    spend = 15.0 * ("mobile" in products) + 40.0 * ("broadband" in products) + 20.0 * ("tv" in products)
    attrs["monthly_spend"] = round(spend * float(rng.uniform(0.7, 1.3)), 2)
    if rng.random() < 0.7:
        attrs["email"] = f"klant{i}@example.nl"
    if rng.random() < 0.3:
        attrs["last_purchase_at"] = (today - dt.timedelta(days=int(rng.integers(0, 365)))).isoformat()
    attrs.update(open_request(i, today))
    return attrs


REQUESTS = ("quote", "quote", "move", "repair", "cancellation")


def open_request(i: int, today: dt.date) -> dict[str, Any]:
    """The CRM's open request of demo customer i: about 1 in 10 has one open (mostly quotes), 1 in 12 had
    one closed lately. Taken from i, not from the random stream, so every other attribute of the demo
    population stays what it was before requests existed."""
    if i % 10 == 7:  # not c-1000 ... c-1003, c-1042: the README's and the tests' examples
        opened = today - dt.timedelta(days=i % 7)
        return {"open_request": REQUESTS[i // 10 % len(REQUESTS)], "request_opened_at": opened.isoformat()}
    if i % 12 == 9:
        return {"request_closed_at": (today - dt.timedelta(days=i % 30)).isoformat()}
    return {}


def demo_population(n: int, seed: int = 42, today: dt.date | None = None) -> list[tuple[str, dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    today = today or dt.date.today()
    return [(f"c-{1000 + i}", demo_customer(i, rng, today)) for i in range(n)]
