"""Plain values shared by the stages: event types, contact history, decision results. No I/O here."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from nba.errors import FieldError

EVENT_TYPES: tuple[str, ...] = ("impression", "click", "accept", "reject", "later", "interest")
EVENT_CODE: dict[str, int] = {name: i for i, name in enumerate(EVENT_TYPES)}

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class History:
    """A customer's recent contact events as parallel arrays (one row per event, unknown ids -> -1)."""

    ts: FloatArray
    event: IntArray
    action: IntArray
    channel: IntArray

    @staticmethod
    def empty() -> History:
        return History(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return int(self.ts.shape[0])


@dataclass(frozen=True, slots=True)
class DecideRequest:
    customer_id: str
    channel: str
    context: dict[str, Any]
    limit: int
    explain: bool
    contact_id: str | None
    dry_run: bool = False  # rank and answer, record and reserve nothing (previews)
    request_id: str | None = None  # a repeat of it within the channel's request_window gets the same answer
    profile: dict[str, Any] | None = None  # with dry_run: rank on these checked attributes, not the stored ones


@dataclass(frozen=True, slots=True)
class EventIn:
    event_id: str
    type: str
    customer_id: str
    action_id: str
    channel: str
    decision_id: str | None
    ts: float
    properties: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RankedAction:
    action_id: str
    rank: int
    group: str
    score: float
    propensity: float
    probability: float
    value: float
    content: dict[str, Any]
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    customer_id: str
    channel: str
    actions: list[RankedAction]
    segments: list[str]
    rules_version: str
    model_version: str
    degraded: bool = False
    dry_run: bool = False
    explain: list[dict[str, Any]] | None = None
    repeat: bool = False  # the stored answer to an earlier request with the same request_id
    context: dict[str, Any] = field(default_factory=dict)
    contact_id: str | None = None
    segment_key: str = ""
    ts: float = 0.0


# what a customer, event, decision or contact id may be (every id a caller sends: wire.py, bulk imports)
MAX_ID = 128
ID_RE = re.compile(r"[A-Za-z0-9._:@+\-]+")


def check_id(value: Any, field: str, errors: list[FieldError], *, required: bool = True) -> str | None:
    if value is None:
        if required:
            errors.append(FieldError(field, "is required"))
        return None
    if not isinstance(value, str):
        errors.append(FieldError(field, "must be a string"))
        return None
    if not 1 <= len(value) <= MAX_ID:
        errors.append(FieldError(field, f"must be 1 to {MAX_ID} characters"))
        return None
    if "{" in value or "}" in value:
        errors.append(FieldError(field, "must not contain { or } (reserved for Redis hash tags)"))
        return None
    if not ID_RE.fullmatch(value):
        errors.append(FieldError(field, "may only contain letters, digits and . _ : @ + -"))
        return None
    return value


def zoned_time(text: str) -> dt.datetime | None:
    """An ISO 8601 time that names its zone (RFC 3339 also allows a lowercase t and z), or None."""
    try:
        parsed = dt.datetime.fromisoformat(text.upper()) if len(text) <= 40 else None
    except ValueError:
        return None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def iso_utc(ts: float, timespec: str = "seconds") -> str:
    """Epoch seconds as an RFC 3339 UTC time with a trailing Z, as every answer and log line writes one."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
