"""The Lua scripts of the Redis store (store/lua/, one file each). Each touches the keys of one customer
only (one hash tag, one slot), or of one global tag, so it is atomic and runs unchanged on Redis Cluster.
Every write is safe to apply twice: redis-py may resend a call after a connection error, and the event
ids make the second application a no-op.

Every script names its KEYS and ARGV at its top; the shared parts (the customer's hash fields, its packed
history, its tombstone and decision lookups; the tally marks) are prepended to the scripts that use them.
"""

from __future__ import annotations

from importlib import resources


def _lua(name: str) -> str:
    return resources.files("nba.store").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


CUSTOMER = _lua("customer")  # fields, history, tombstones, decision lookup, meta parsing
MARKS = _lua("marks")  # tally marks
REQUESTS = _lua("requests")  # decide request ids: read, remember, trim

RECORD_DECISION = CUSTOMER + REQUESTS + _lua("record_decision")
FIND_REQUEST = REQUESTS + _lua("find_request")
APPLY_EVENTS = CUSTOMER + _lua("apply_events")
CREDIT_EVENTS = CUSTOMER + MARKS + _lua("credit_events")
CLEAR_TALLY_MARKS = CUSTOMER + MARKS + _lua("clear_tally_marks")
WRITE_PROFILE = CUSTOMER + _lua("write_profile")
ERASE_CUSTOMER = _lua("erase_customer")
ATTRIBUTE_CODES = _lua("attribute_codes")
COMMIT_LEARNING = _lua("commit_learning")
REBASE_MODEL = _lua("rebase_model")
TAKE_LEASE = _lua("take_lease")
CLEAR_REWRITE_DUE = _lua("clear_rewrite_due")
PUBLISH_RULES = _lua("publish_rules")
ROLLBACK_RULES = _lua("rollback_rules")
