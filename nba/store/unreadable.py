"""Stored records that cannot be parsed: counted, reported, skipped; never a customer's permanent error.

nba validates what it writes, so an unreadable record means data written by hand, by an older or
buggy version, or damaged. Each reader skips what it cannot parse and goes on with the rest (a
history entry, an inbox entry, a decision record) or falls back (a decision answers degraded on an
unreadable profile), and tells this reporter, which counts every one and logs at most one line per
kind every REPORT_SECONDS, because the same record is met again at every read of its customer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)
REPORT_SECONDS = 10.0
SHOWN_CHARACTERS = 120


class Unreadable:
    def __init__(self, count: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic):
        self._count = count or (lambda kind: None)
        self._clock = clock
        self._last: dict[str, float] = {}
        self._since: dict[str, int] = {}

    def __call__(self, kind: str, where: str, text: str | bytes) -> None:
        """`kind`: what could not be read (history_entry, profile, inbox_entry, ...); `where`: whose
        (a customer id, an inbox entry id); `text`: the record, shortened in the log."""
        self._count(kind)
        self._since[kind] = self._since.get(kind, 0) + 1
        now = self._clock()
        if now - self._last.get(kind, -REPORT_SECONDS) >= REPORT_SECONDS:
            shown = text if isinstance(text, str) else text.decode(errors="replace")
            log.warning(
                "skipped %d unreadable %s record(s) since the last report; the latest at %s: %r",
                self._since[kind],
                kind,
                where,
                shown[:SHOWN_CHARACTERS],
            )
            self._last[kind] = now
            self._since[kind] = 0
