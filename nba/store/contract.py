"""The storage contract: what nba needs from its store, and the values that cross it.

The domain (decision, learning, customers, live) depends on `Storage`, never on Redis. `nba/store/redis/`
implements it on one Redis; tests/store/test_contract.py is the suite every implementation must pass
(a Redis Cluster runs the same suite). docs/architecture.md explains the guarantees in prose.

Guarantees every implementation keeps:
- a customer's reads and writes are atomic per customer (one script, one slot);
- a decision is recorded only on the history it was ranked on (compare-and-set on a version);
- events are idempotent on their ids: applied, credited to a decision and counted in the tally once;
- a learner's batch is committed with its inbox position, and only while it holds the lease;
- an erased customer leaves nothing readable, and events or decisions for it record nothing for
  ERASED_SECONDS (keys.py).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from nba.errors import StoredDataUnreadable
from nba.store.unreadable import Unreadable

GrantStatus = Literal["none", "late", "granted", "dup", "bad"]
EventStatus = Literal["erased", "unknown", "dup", "hist", "late", "credited"]
RewriteOutcome = Literal["none", "started", "busy", "refused"]


@dataclass(frozen=True, slots=True)
class CustomerSnapshot:
    """What a decision needs about one customer, read in one call."""

    attributes: dict[str, Any] | None
    segments: int | None  # bits over the rule set's segments (segments.materialise)
    segments_version: str | None  # of the rules that computed `segments`
    history: bytes  # packed, oldest first (history.py)
    contact_actions: int = 0  # actions already returned in this contact_id
    version: str = "0"  # of the history this snapshot saw; a decision records only on the same one


class Recorded(enum.IntEnum):
    """What recording a decision did."""

    CHANGED = 0  # the history moved on since it was read: nothing written, rank again
    RECORDED = 1
    ERASED = 2  # the customer was erased: nothing written
    ANONYMOUS = 3  # no profile, and the channel does not remember anonymous visitors: nothing written
    REPEATED = 4  # its request_id already names a live decision (a twin request won): nothing written


class RequestMark(NamedTuple):
    """A decision's request_id, remembered with it so that a repeat gets the same answer."""

    request_id: str
    fingerprint: str  # what a repeat must share with this request (decision/repeats.py)
    until_ms: int  # a repeat until then (epoch ms) gets this decision
    answer: bytes  # the answer to give again (decision/repeats.py)


class StoredRequest(NamedTuple):
    """What a live request_id names."""

    decision_id: str
    fingerprint: str
    answer: bytes


class DecisionWrite(NamedTuple):
    """A decision to record, with what it reserves."""

    decision_id: str
    ts_ms: int
    record: bytes  # the decision log's JSON (learning/record.py)
    ranked: list[tuple[str, str]]  # (action_id, learning meta) per returned action
    channel: str
    contact_id: str | None = None
    contact_ttl: float = 0  # seconds the contact's count of returned actions lives
    anonymous_ttl: int = 0  # without a profile: seconds what is written lives (0: nothing is written)
    # the reservations hold from then (epoch ms) when later than ts_ms: an outbound selection sent at a
    # later time is an impression-to-be until its send time and rank.RESERVATION_SECONDS after it
    reserve_from_ms: int = 0
    request: RequestMark | None = None  # remember the request_id (None: the request had none)


@dataclass(frozen=True, slots=True)
class StoredProfile:
    attributes: dict[str, Any]
    segments: int
    segments_version: str
    revision: str
    updated_ms: int


@dataclass(frozen=True, slots=True)
class EventArgs:
    """One accepted event, as the store keeps it."""

    customer_id: str
    event_id: str
    ts_ms: int
    type: str
    action_id: str
    channel: str
    decision_id: str | None


@dataclass(frozen=True, slots=True)
class Grant:
    """The learner's credit for one inbox entry."""

    status: GrantStatus  # bad: the decision's meta cannot be read
    trial: float
    reward: float
    meta: str  # the decision's learning meta for this action ('' when none)
    counted: bool  # this inbox entry counts the event in the per-action tally (once per event id)
    marked: bool  # ... decided by a tally mark, which the commit makes obsolete (clear_tally_marks)


class Tally(enum.IntEnum):
    """The statistics a learner's commit adds to."""

    COUNTS = 1  # per action and segment key: n:<action>:<key> trials, r:<action>:<key> rewards
    EVENTS = 2  # per action and event type: <action>:<type>
    ARMS = 3  # model and control: n:<arm>, r:<arm>


class PerfCell(NamedTuple):
    """One of the board's counters: what happened to an action on a channel in one hour (epoch hour) or,
    read by day, one day (the epoch hour it starts)."""

    hour: int
    action_id: str
    channel: str  # of the decision the event answers, else the event's own
    arm: str  # model, control, or none (an event that answers no decision)
    measure: str  # an event type, or `value`


@dataclass(frozen=True, slots=True)
class LearningCommit:
    """What one learner batch adds: statistics, the contextual rows it touched and the board's counters,
    committed with the inbox positions it read up to."""

    position: Positions
    increments: list[tuple[Tally, str, float]]  # (which tally, field, amount)
    contextual: Mapping[str, bytes]  # action -> row bytes
    signature: str  # the feature columns of the rows
    reset: bool = False  # drop every row first (the feature columns changed)
    performance: Mapping[PerfCell, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RulesChange:
    """The current rule set changed: published from a directory, or rolled back."""

    at_ms: int
    version: str
    kind: str  # publish | rollback
    previous: str | None


@dataclass(frozen=True, slots=True)
class InboxBacklog:
    """What waits for the learner: entries not yet committed, and the time the oldest was accepted."""

    pending: int
    oldest_ms: int | None


@dataclass(frozen=True, slots=True)
class ModelData:
    """Everything the serving model is built from, read at one version."""

    version: str
    counts: dict[tuple[str, str], tuple[float, float]]
    contextual: dict[str, bytes]  # action -> row bytes
    signature: str  # feature columns the contextual rows were learned on
    arms: dict[str, tuple[float, float]]  # arm -> (shown, rewards)
    # counts and contextual rows are forward-decayed (learning/forgetting.py): an example learned at time t
    # was added with weight 2^((t - landmark) / half_life); half_life 0 means nothing is forgotten
    landmark: float = 0.0
    half_life: float = 0.0


@dataclass(frozen=True, slots=True)
class InboxBatch:
    """Inbox entries after the positions: the readable ones, and per shard the id of the last one read
    (readable or not, so the learner moves past an entry it skipped); empty when nothing was read."""

    entries: list[tuple[str, EventArgs]]
    last: dict[int, str]


class ProfileWrite(NamedTuple):
    """One profile of a bulk write: what write_profile takes, without a revision to compare."""

    customer_id: str
    attributes: Mapping[str, Any]
    segments: int
    segments_version: str
    updated_ms: int


Positions = Mapping[int, str]  # inbox shard -> id of the last entry committed ("0": none yet)


class Storage(Protocol):
    """Everything nba stores. Every method is one round trip unless it says otherwise."""

    unreadable: Unreadable  # told of every stored record that cannot be parsed (readers skip it)

    # ------------------------------------------------------------------------------ customers

    async def read_customer(self, customer_id: str, contact_id: str | None = None) -> CustomerSnapshot:
        """Profile, segments, history and its version (and the contact's count): a decision's only read.
        StoredDataUnreadable when the profile cannot be parsed."""
        ...

    async def read_customers(self, customer_ids: list[str]) -> list[CustomerSnapshot | StoredDataUnreadable]:
        """read_customer for many at once (an outbound run reads its population so), sent together; a
        customer whose profile cannot be parsed is its StoredDataUnreadable, not the batch's failure."""
        ...

    async def get_profile(self, customer_id: str) -> tuple[StoredProfile | None, bytes]:
        """The stored profile (None when there is none) and the packed history."""
        ...

    async def write_profile(
        self,
        customer_id: str,
        expected_revision: str,
        attributes: Mapping[str, Any],
        segments: int,
        segments_version: str,
        updated_ms: int,
    ) -> int:
        """The new revision, or -1 when the profile changed since `expected_revision` ('' when it must not
        exist yet, '*' for any). A profile makes the customer permanent and lifts an erasure."""
        ...

    async def write_profiles(self, writes: list[ProfileWrite]) -> None:
        """Replace many profiles (write_profile with expected revision '*'), pipelined: one round trip for
        all of them on one Redis. Written in order, so of two writes of one customer the later stays."""
        ...

    async def profile_attributes(self, customer_ids: list[str]) -> list[dict[str, Any] | None]:
        """The stored attributes of each customer (None: no profile), pipelined. StoredDataUnreadable when
        one cannot be parsed."""
        ...

    async def erase(self, customer_id: str, now_ms: int) -> int:
        """Delete everything of the customer, including the learner's pending events for it, and refuse
        its id for ERASED_SECONDS; the number of keys deleted."""
        ...

    async def rewrite_if_due(self, interval: float) -> RewriteOutcome:
        """Take erased customers off the files on disk, at most once per `interval` across processes."""
        ...

    # ------------------------------------------------------------------------------ decisions

    async def record_decision(self, customer_id: str, version: str, write: DecisionWrite) -> Recorded:
        """Record the decision and reserve its actions if the customer's history is still at `version`;
        with a request, only if its request_id names no live decision yet (else REPEATED: read it with
        find_request), remembering it until `until_ms`. A customer remembers at most REQUESTS_MAX request
        ids at once (keys.py): the ones that would end first go."""
        ...

    async def find_request(self, customer_id: str, request_id: str, now_ms: int) -> StoredRequest | None:
        """The decision a request_id names, while it is remembered (until its `until_ms`) and the decision
        record still exists; None otherwise."""
        ...

    def customers_with_profiles(self, batch: int = 1000) -> AsyncIterator[list[str]]:
        """Every customer with a profile, in batches of about `batch` ids (incremental: never blocks the
        store; a customer written or erased while it runs may or may not be in it)."""
        ...

    def customers_with_decisions(self) -> AsyncIterator[str]:
        """Every customer with decision records (incremental: never blocks the store)."""
        ...

    async def decision_records(self, customer_id: str) -> list[dict[str, Any]]:
        """The decision log of one customer, each record with the rewards its actions earned."""
        ...

    # ------------------------------------------------------------------------------ outbound runs

    async def outbound_used(self, channel: str, day: str) -> dict[str, int]:
        """What real runs took for sending on `day`: `*` -> on `channel`, action -> of each action on every
        channel (an action's volume is its own)."""
        ...

    async def add_outbound_used(self, channel: str, day: str, counts: Mapping[str, int]) -> None:
        """Add `counts` (negative: give back) to `*` of the channel's day and to the actions' volumes."""
        ...

    async def lock_outbound(self, token: str, ttl_ms: int) -> bool:
        """Take (or, holding it, renew) the lock of real runs: one at a time, over every channel."""
        ...

    async def unlock_outbound(self, token: str) -> None: ...

    async def capacity_prices(self) -> dict[str, bytes]:
        """`<channel>|<day>` -> the JSON of that day's capacity price."""
        ...

    async def set_capacity_price(self, channel: str, day: str, price: bytes, now_ms: int) -> None:
        """Set the channel's price for `day`; its prices of days that ended by `now_ms` go."""
        ...

    async def save_outbound_run(self, run_id: str, doc: bytes, started_ms: int) -> None:
        """Write a run's document (state, progress, report) and list it among the newest runs."""
        ...

    async def outbound_run(self, run_id: str) -> bytes | None: ...

    async def outbound_runs(self, count: int) -> list[str]:
        """The newest run ids, newest first."""
        ...

    async def add_outbound_selection(self, run_id: str, chunk: bytes) -> None:
        """Append a chunk of JSON lines to the run's selection."""
        ...

    def outbound_selection(self, run_id: str) -> AsyncIterator[bytes]:
        """The run's selection, chunk by chunk."""
        ...

    # ------------------------------------------------------------------------------ events

    async def apply_events(
        self,
        by_customer: Mapping[str, list[EventArgs]],
        now_ms: int | None = None,
        anonymous_ttl: Mapping[str, int] | None = None,
    ) -> dict[str, list[EventStatus]]:
        """Apply events to the customers' histories and queue them for the learner; a status per event.
        `anonymous_ttl`: per customer, how long the history of one without a profile lives (0 or absent:
        its events are 'unknown' and nothing is kept)."""
        ...

    # ------------------------------------------------------------------------------ the learner

    async def read_inbox(self, after: Positions, count: int) -> InboxBatch:
        """Up to `count` entries of each inbox shard after its position."""
        ...

    async def wait_inbox(self, after: Positions, seconds: float) -> bool:
        """Wait up to `seconds` for an entry after the positions; True as soon as there is one."""
        ...

    async def learner_position(self) -> dict[int, str]:
        """The committed position of every inbox shard."""
        ...

    async def take_lease(self, token: str, lease_ms: int) -> bool:
        """Take the learner's lease when free, or renew it when `token` holds it."""
        ...

    async def release_lease(self, token: str) -> None: ...

    async def credit_events(
        self, entries: list[tuple[str, EventArgs]], rewards: Mapping[tuple[str, str], float], position: Positions
    ) -> list[Grant]:
        """Credit inbox entries to the decisions they answer, exactly once per event id (the same entry
        replayed gets the same grant). `rewards`: (channel, event type) -> reward."""
        ...

    async def clear_tally_marks(self, customer_ids: Iterable[str], position: Positions) -> None:
        """After a commit at `position`: forget what the committed entries counted."""
        ...

    async def commit_learning(self, token: str, lease_ms: int, commit: LearningCommit) -> bool:
        """Add one batch's statistics and the board's counters and move the positions of the shards it
        read, atomically, if `token` holds the lease."""
        ...

    async def inbox_backlog(self) -> InboxBacklog: ...

    async def model_updated_ms(self) -> int | None:
        """When the learner last committed (epoch ms)."""
        ...

    async def performance(self, start_hour: int, end_hour: int, *, by_day: bool) -> dict[PerfCell, float]:
        """The board's counters of the hours [start_hour, end_hour) (epoch hours), per hour or, `by_day`,
        per UTC day (the hour field then the day's first hour; start and end on day boundaries)."""
        ...

    # ------------------------------------------------------------------------------ the model

    async def rebase_model(
        self,
        token: str,
        lease_ms: int,
        counts: Mapping[tuple[str, str], tuple[float, float]],
        contextual: Mapping[str, bytes],
        landmark: float,
        half_life: float,
    ) -> bool:
        """Replace the per-segment counts and contextual rows (not the signature) with these, under a new
        landmark and half-life, atomically, if `token` holds the lease."""
        ...

    async def model_version(self) -> str: ...

    async def model_data(self) -> ModelData:
        """The version and every statistic, read together so the version names exactly these."""
        ...

    async def event_counts(self) -> dict[tuple[str, str], int]:
        """(action, event type) -> events received, each event id counted once."""
        ...

    # ------------------------------------------------------------------------------ rules

    async def publish_rules(self, version: str, files: Mapping[str, str], *, force: bool = True) -> bool:
        """Make a rule set read from a rules directory current; without `force` only when it differs from
        the last set published from a directory. True when the current version changed."""
        ...

    async def rules_source_version(self) -> str | None: ...

    async def current_rules_version(self) -> str | None: ...

    async def rules_files(self, version: str) -> dict[str, str] | None: ...

    async def rollback_rules(self) -> str | None:
        """Make the previously published set current again; the version now current, or None."""
        ...

    async def rules_history(self) -> list[str]:
        """The published versions a rollback can reach, newest (the current one) first."""
        ...

    async def rules_changes(self) -> list[RulesChange]:
        """The changes of the current version, newest first (at most keys.RULES_CHANGES_MAX)."""
        ...

    async def board_secret(self) -> bytes:
        """The key of the board's session cookies (the same for every process, made once)."""
        ...

    # ------------------------------------------------------------------------------ access and audit

    async def access_version(self) -> str:
        """Moves with every key change: processes poll it and reload the keys."""
        ...

    async def read_keys(self) -> tuple[str, dict[str, bytes], dict[str, int], bool]:
        """The version, every key record by id, when each key was last used (epoch ms), and whether a
        key was ever created (a server that had keys never runs open again)."""
        ...

    async def save_key(self, key_id: str, record: bytes) -> None: ...

    async def revoke_key(self, key_id: str) -> bool:
        """Delete the key; False when there was none."""
        ...

    async def touch_keys(self, used: Mapping[str, int]) -> None:
        """Remember when keys were last used (only keys that still exist)."""
        ...

    async def audit_secret(self) -> bytes:
        """The key of the audit trail's erasure hashes (the same for every process, made once)."""
        ...

    async def append_audit(self, entry: Mapping[str, str], now_ms: int) -> str:
        """Append to the audit trail (trimming entries past their retention); the entry's id."""
        ...

    async def read_audit(self, after: str, count: int) -> list[tuple[str, dict[str, str]]]: ...

    # ------------------------------------------------------------------------------ the connection

    async def ping(self) -> bool: ...

    async def config_advice(self) -> list[str]: ...

    async def close(self) -> None: ...
