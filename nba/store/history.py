"""The packed contact history of one customer: field `h` of the customer hash (see keys.py).

One string instead of a sorted set and a dedupe set: each entry is a line

    <ts_ms base 36>|<type>|<action_id>|<channel>|<id>\\n

oldest first. `type` is the event type's index in EVENT_TYPES, or `r` for a reservation (a returned
action whose impression has not arrived yet). `id` is a 64-bit hash of the event id in base64url
(11 characters, however long the channel's ids are), or the decision id of a reservation. The scripts
in scripts.py keep the order, find duplicates by `|<id>\\n` and trim from the front; ids and the
separators cannot collide because ids are validated to exclude `|` and newlines (http/wire.py).

Why: a customer's history used to be two sorted sets and a version key, four keys with their own
dictionary and expiry entries and a timestamp written twice per event. One field of the one customer
hash keeps the listpack compact (loadtests/seed.py measures it).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable, Iterator

from nba.domain import EVENT_TYPES

RESERVED = "r"
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
# a type code per event type: its index, one character
TYPE_CODE: dict[str, str] = {name: str(i) for i, name in enumerate(EVENT_TYPES)}
assert all(len(c) == 1 for c in TYPE_CODE.values())


def ts36(ts_ms: int) -> str:
    out = []
    while True:
        ts_ms, d = divmod(ts_ms, 36)
        out.append(_DIGITS[d])
        if not ts_ms:
            return "".join(reversed(out))


def event_key(event_id: str) -> str:
    """The stored identity of an event: a duplicate has the same key (collisions: 2^-64 per pair)."""
    return base64.urlsafe_b64encode(hashlib.blake2b(event_id.encode(), digest_size=8).digest())[:11].decode()


def event_entry(ts_ms: int, event_type: str, action_id: str, channel: str, key: str) -> str:
    """The entry of an event whose event_key is `key` (the caller needs the key on its own too)."""
    return f"{ts36(ts_ms)}|{TYPE_CODE[event_type]}|{action_id}|{channel}|{key}\n"


def reservation_entry(ts_ms: int, action_id: str, channel: str, decision_id: str) -> str:
    return f"{ts36(ts_ms)}|{RESERVED}|{action_id}|{channel}|{decision_id}\n"


def pack(entries: Iterable[tuple[int, str, str, str, str]]) -> bytes:
    """A stored history from (ts_ms, event type, action, channel, event id): for tests and benchmarks."""
    return "".join(
        event_entry(ts, etype, action, channel, event_key(eid))
        for ts, etype, action, channel, eid in sorted(entries, key=lambda e: e[0])
    ).encode()


_CODES = len(EVENT_TYPES)


def newest_first(
    raw: bytes, since_ms: int, bad: Callable[[str], None] | None = None
) -> Iterator[tuple[int, int, str, str]]:
    """(ts_ms, event code or -1 for a reservation, action, channel) of every entry at or after `since_ms`.
    An entry that cannot be parsed is skipped and handed to `bad`: one damaged entry must not make the
    customer's every read fail."""
    lines = raw.decode(errors="replace").split("\n")
    # the last piece is the empty one after the final newline (or an unfinished entry: parsed like any)
    for i in range(len(lines) - (1 if lines[-1] == "" else 0) - 1, -1, -1):
        try:
            t, e, a, c, _ = lines[i].split("|", 4)
            ts = int(t, 36)
            code = -1 if e == RESERVED else int(e)
            if not -1 <= code < _CODES or not a or not c:
                raise ValueError(e)
        except ValueError:
            if bad is not None:
                bad(lines[i])
            continue
        if ts < since_ms:
            return
        yield ts, code, a, c
