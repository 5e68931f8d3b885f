"""The storage contract (store/contract.py) on one Redis: one class per part of the contract, combined.

Every key is in store/keys.py, every script in store/scripts.py; the customer scripts and the inbox share
one pipelined connection (store/multiplex.py).
"""

from __future__ import annotations

from nba.store.redis.access import Access
from nba.store.redis.base import INBOX_WAIT_MAX, Observer
from nba.store.redis.customers import Customers
from nba.store.redis.decisions import Decisions
from nba.store.redis.erasure import Erasure
from nba.store.redis.events import Events
from nba.store.redis.learner import Learning
from nba.store.redis.model import Model
from nba.store.redis.outbound import Outbound
from nba.store.redis.rules import Rules

__all__ = ["INBOX_WAIT_MAX", "Observer", "Store"]


class Store(Access, Customers, Erasure, Decisions, Events, Learning, Model, Outbound, Rules):
    """nba's store on one Redis (a standalone server or a primary with replicas)."""
