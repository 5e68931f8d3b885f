"""Every Redis key nba uses, with its type, lifetime and why. Nothing else builds key names.

All keys of one customer share the hash tag `{c:<id>}`, so a Lua script may touch any of them in one
call, also on Redis Cluster. Global state has tags of its own (`{model}`, `{rules}`) so it can live on
other shards than the customers.

    nba:{c:<id>}              hash   the customer: one key, so its main-dictionary and expiry entries are
                                     paid once. Fields (store/redis/customers.py encodes the profile,
                                     store/history.py the history):
                                       a  attributes, JSON [code, value, code, value, ...] with the codes
                                          of nba:{rules}:attributes in place of the names
                                       s  materialised profile segments as bits (bit i: the rule set's
                                          i-th segment), valid while g matches the rules
                                       g  the segments version of the rules that computed s
                                       u  updated_at (epoch ms)
                                       r  profile revision (compare-and-set of merges)
                                       v  version of the history, HINCRBY-ed by every change of it
                                          (events, decisions): a decision is recorded only if it was
                                          ranked on the latest one
                                       h  the contact history, packed: events and the reservations of
                                          returned actions whose impression has not arrived yet, oldest
                                          first, trimmed to HISTORY_TTL and HISTORY_MAX on every write.
                                          Each entry holds a 64-bit hash of its event id, so duplicates
                                          are found in it and there is no separate dedupe set.
                                       t  tally marks: events applied without a decision, until the
                                          learner has counted them once (scripts.py, _MARKS); present
                                          only between an event and the learner's next commit
                                     No TTL while it has a profile (the CRM owns its lifetime; erase
                                     deletes it); without one (events of unknown customers) it expires
                                     HISTORY_TTL after the last write.
    nba:{c:<id>}:decisions    zset   decision_id -> ts_ms: index of the decision records (erase, export).
    nba:{c:<id>}:d:<did>      hash   rec (JSON decision record), a:<action> = learning meta of the
                                     action (channel|segment key|arm|attribution deadline|feature
                                     signature|features), r:<action> = reward credited so far,
                                     g:<event_id> = the learner's grant for that event (exactly once),
                                     v:<action> = its reservation, ans = the answer given to a request_id
                                     (deleted when the id is trimmed). Expires after DECISION_TTL.
    nba:{c:<id>}:shown        hash   action -> newest decision that returned it: answers without a
                                     decision_id (or from another channel) are credited to it.
    nba:{c:<id>}:contacts     hash   contact_id -> actions returned in that contact (call, visit), for
                                     the per-contact limit; expires `contact.within` after the last.
    nba:{c:<id>}:requests     hash   request_id -> "<decision_id>|<until ms>|<fingerprint>": the decide requests
                                     whose repeats get the same answer (decision/repeats.py) until then;
                                     the answer is the field `ans` of that decision's record. Trimmed of
                                     ended entries (and their records' `ans`) on every write, at most
                                     REQUESTS_MAX entries; expires with its last-ending entry.
    nba:{e<hex>}:erased       hash   tombstones of erased customers: a one-way hash of the id (erased_field) ->
                                     until when (epoch ms). One such key per Redis Cluster slot: its tag
                                     is chosen to hash to the customers' slot (slot_tag), so the scripts
                                     of a customer can read it atomically without the key naming anyone.
                                     Events and decisions for a tombstoned id record nothing; a profile
                                     write removes the tombstone. Expires ERASED_SECONDS after the last.
    nba:{model}:inbox         stream every accepted event, written right after the customer's history (same
                                     round trip): what the learner consumes (learning/learner.py); an
                                     entry is deleted once its batch is committed. The inbox of a single
                                     Redis; on Redis Cluster it is sharded (next lines).
    nba:{<tag>}:inbox         stream shard i of N of the inbox on Redis Cluster: the events of the customers
                                     whose slot is in the i-th of N equal slot ranges, the stream itself
                                     in the middle of that range (slot_tags), so on a cluster whose
                                     primaries own equal ranges it sits with its customers and every
                                     primary takes a share of the event writes.
    nba:{model}:shards        string N, the number of inbox shards: fixed by the first process that starts
                                     (1 on a single Redis, 2 per primary on a cluster), read by all.
    nba:{model}:lease         string token of the one learner allowed to commit (expires LEASE_MS).
    nba:{model}:positions     hash   shard -> id of the last inbox entry whose statistics are committed.
    nba:{model}:position      string the same for the single inbox of versions before the shards (read when
                                     shard 0 has no entry in positions).
    nba:{model}:counts        hash   n:<action>:<key> trials, r:<action>:<key> reward sum (floats).
    nba:{model}:contextual    hash   <action> -> float64 bytes [n, b (d), G (d x d)] of the contextual
                                     model; `signature` -> the feature columns they were learned on.
    nba:{model}:arms          hash   n:<arm>, r:<arm>: shown actions and rewards of model vs control.
    nba:{model}:version       string INCR-ed by every learner commit: serving processes poll it.
    nba:{model}:events        hash   <action>:<type> -> count of every event received, for stats.
    nba:{model}:updated       string epoch ms of the latest learner commit (the board's model age).
    nba:{model}:perf:h:<day>  hash   the board's hourly counters of one UTC day (YYYY-MM-DD): field
                                     <HH>|<action>|<channel>|<arm>|<measure> -> amount, where measure is
                                     an event type (each event id once, by the event's own time) or
                                     `value` (each accept's action value), channel the channel of the
                                     decision it answers (else its own) and arm model, control or none.
                                     Added by the learner's commit; expires PERF_HOUR_DAYS after its day.
    nba:{model}:perf:d:<month> hash  the same per UTC day of one month (YYYY-MM): <DD>|<action>|...;
                                     expires PERF_DAY_DAYS after the month.
    nba:{rules}:current       string version (content hash) of the rule set every process should run.
    nba:{rules}:set:<version> string JSON {relative path: file text} of a published rule set; kept
                                     while it is in the history, so a rollback can go back to it.
    nba:{rules}:history       list   published versions, newest first, at most RULES_HISTORY.
    nba:{rules}:changes       list   JSON {at (epoch ms), version, kind (publish | rollback), previous} of
                                     each change of the current version, newest first, at most
                                     RULES_CHANGES_MAX: the board marks them on its time axis.
    nba:{rules}:source        string the version last published from a rules directory: the watcher
                                     and start-up publish a directory only when its content differs,
                                     so a rollback is not undone by files that did not change.
    nba:{ops}:rewrite_due     string epoch ms of the latest erasure that Redis's files on disk may still hold
                                     (customers/erasure.py asks Redis to rewrite them, then deletes it).
    nba:{ops}:rewrite_lock    string the one process that may ask for the next rewrite (expires).
    nba:{access}:keys         hash   API key id -> JSON record (name, role, channels, origins, rate, created,
                                     expiry, SHA-256 of the key; never the key: access/apikeys.py).
                                     No TTL: a key lives until revoked (HDEL); expired keys are refused.
    nba:{access}:used         hash   API key id -> epoch ms it was last used (each process writes what it
                                     saw every USED_FLUSH_SECONDS, access/service.py).
    nba:{access}:sealed       string set with the first key and never removed by nba: a server that ever had a
                                     key never runs open again (revoking the last key, or a damaged
                                     record, must not open it to everyone).
    nba:{access}:version      string INCR-ed by every key change: processes poll it (ACCESS_POLL_SECONDS)
                                     and reload the keys, so a revoked key is refused everywhere within 1 s.
    nba:{access}:board        string the key of the board's session cookies (32 random bytes, made once):
                                     every process signs and checks them alike (access/session.py).
    nba:{audit}:log           stream who did what when: erasures (a keyed hash of the customer id, never the
                                     id), rule reloads and rollbacks, key changes. Append-only; entries
                                     older than AUDIT_RETENTION are trimmed at each append (XADD MINID).
    nba:{audit}:secret        string the key of the erasure hashes (32 random bytes, made once): without
                                     it the hash of a guessed id cannot be computed from the log alone.
    nba:{outbound}:run:<id>   string JSON of an outbound run: its request, state, progress and report
                                     (nba/outbound/). Expires OUTBOUND_RUN_TTL after its last update.
    nba:{outbound}:run:<id>:selection
                              list   the run's selection for lead management, one JSON line per customer
                                     and action, in chunks of lines; expires with the run.
    nba:{outbound}:runs       zset   run id -> started (epoch ms): the newest OUTBOUND_RUNS_KEPT runs.
    nba:{outbound}:used:<channel>
                              hash   <day>:* -> actions the real runs recorded (or were about to record)
                                     for sending that day (the channel's local day, YYYY-MM-DD);
                                     expires OUTBOUND_USED_TTL after the last run.
    nba:{outbound}:volume     hash   <day>:<action> -> selections of the action by real runs for that
                                     day, over every channel (an action's volume is its own, not a
                                     channel's); expires OUTBOUND_USED_TTL after the last run.
    nba:{outbound}:prices     hash   <channel>|<day> -> JSON {price, from_ms, until_ms, run_id}: the
                                     capacity price of the day's latest real run, applied to real-time
                                     decisions on that day when the channel's capacity says real_time;
                                     a channel's ended days are removed when it gets a new one.
    nba:{outbound}:lock       string the one real run at a time (token; expires, renewed): runs on
                                     different channels share actions' volumes.
    nba:{rules}:attributes    hash   attribute name -> code (0, 1, 2, ... in order of first use, never
                                     reused or removed): profiles store codes, not names. Part of the
                                     rules' state: without it stored attributes cannot be read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from functools import cache

PREFIX = "nba"

DAY = 86400
HISTORY_MAX = 1000  # newest events kept per customer: bounds the decide read
HISTORY_TTL = 400 * DAY
# Events older than this are refused at the door. The history keeps far longer (HISTORY_TTL), so a
# duplicate inside the window is found in it; only a customer past HISTORY_MAX entries loses the oldest.
DEDUPE_WINDOW = 30 * DAY
DECISION_TTL = 30 * DAY
# how long events and decisions for an erased id record nothing (then it is a new, unknown customer): as
# long as a late event can still be accepted (DEDUPE_WINDOW)
ERASED_SECONDS = DEDUPE_WINDOW
DECISIONS_MAX = 500  # newest decision records kept per customer (a bot cannot grow one without bound)
# request ids remembered per customer at once: a page view or a call makes a few; a client sending a new id
# every time cannot grow the hash past this (the ones ending first go), and it stays a compact listpack
REQUESTS_MAX = 64
TALLY_MARKS_BYTES = 40_000  # tally marks kept per customer while the learner is away (about 1,000)

# Redis keeps a small hash as one compact listpack only while every value is short (64 bytes by default).
# A customer's attributes (~110 bytes) and packed history (~40 bytes per entry) are longer, and one long
# value turns the whole key into a hashtable that takes about twice the memory (seed.py: 829 vs 422 bytes
# per customer). 4096 keeps customers with up to ~100 history entries compact; nba's own redis-server
# starts with it, and `nba serve` warns when the configured Redis has a lower one.
REDIS_CONFIG = {"hash-max-listpack-value": 4096}


class Field:
    """The fields of a customer's hash (store/lua/customer.lua names them as well; a test compares)."""

    ATTRIBUTES = "a"
    SEGMENTS = "s"
    SEGMENTS_VERSION = "g"
    UPDATED = "u"
    REVISION = "r"
    VERSION = "v"
    HISTORY = "h"
    TALLY = "t"


def customer_tag(customer_id: str) -> str:
    # ids are validated to exclude { and }, which would move the key to another slot
    return f"{PREFIX}:{{c:{customer_id}}}"


def customer_slot(customer_id: str) -> int:
    """The Redis Cluster hash slot of every key of this customer (CRC16 of the tag, as Redis computes it)."""
    return binascii.crc_hqx(f"c:{customer_id}".encode(), 0) & 16383


@cache
def slot_tags() -> tuple[str, ...]:
    """A short hash tag for each of the 16,384 slots (index = slot): keys that must live beside a customer
    without naming it. Found by counting through e0, e1, ... (about 110,000 CRCs, 50 ms, once)."""
    found: list[str | None] = [None] * 16384
    left, i = 16384, 0
    while left:
        tag = f"e{i:x}"
        slot = binascii.crc_hqx(tag.encode(), 0) & 16383
        if found[slot] is None:
            found[slot] = tag
            left -= 1
        i += 1
    return tuple(t for t in found if t is not None)


def erased(customer_id: str) -> str:
    return f"{PREFIX}:{{{slot_tags()[customer_slot(customer_id)]}}}:erased"


def erased_field(customer_id: str) -> str:
    """A one-way hash of the id: the tombstone recognises the id when it comes back, without holding it."""
    digest = hashlib.blake2b(customer_id.encode(), digest_size=8, person=b"nba-erased").digest()
    return base64.urlsafe_b64encode(digest)[:11].decode()


def customer(customer_id: str) -> str:
    return customer_tag(customer_id)


def decisions(customer_id: str) -> str:
    return f"{customer_tag(customer_id)}:decisions"


def contacts(customer_id: str) -> str:
    return f"{customer_tag(customer_id)}:contacts"


def requests(customer_id: str) -> str:
    return f"{customer_tag(customer_id)}:requests"


def shown(customer_id: str) -> str:
    return f"{customer_tag(customer_id)}:shown"


def decision(customer_id: str, decision_id: str) -> str:
    return f"{customer_tag(customer_id)}:d:{decision_id}"


def customer_pattern(customer_id: str) -> str:
    """SCAN pattern for every key of one customer (ids cannot hold glob characters: see wire.py)."""
    return f"{customer_tag(customer_id)}*"


def all_customers_pattern() -> str:
    """SCAN pattern matching every customer hash (and their other keys: keep those that are_customer)."""
    return f"{PREFIX}:{{c:*}}"


def is_customer(key: str) -> bool:
    """Whether a key SCAN found is a customer's hash itself (it ends with its tag), not one of its others."""
    return key.startswith(f"{PREFIX}:{{c:") and key.endswith("}")


def all_decision_indexes_pattern() -> str:
    return f"{PREFIX}:{{c:*}}:decisions"


def customer_of(key: str) -> str:
    """The customer id inside a customer key (the text between `{c:` and the closing `}`)."""
    return key[key.index("{c:") + 3 : key.index("}")]


MODEL_COUNTS = f"{PREFIX}:{{model}}:counts"
MODEL_VERSION = f"{PREFIX}:{{model}}:version"
EVENT_COUNTS = f"{PREFIX}:{{model}}:events"
MODEL_CONTEXTUAL = f"{PREFIX}:{{model}}:contextual"
MODEL_ARMS = f"{PREFIX}:{{model}}:arms"
MODEL_DECAY = f"{PREFIX}:{{model}}:decay"  # landmark and half-life of the forward-decayed statistics
MODEL_UPDATED = f"{PREFIX}:{{model}}:updated"
# the board's counters: hours for a week and today, days for a year and a month (a campaign review). An
# action shown every hour on 4 channels in both arms, with accepts and rejects, costs 71-80 KB of hourly
# counters a day (768 fields; measured, docs/board.md) and 1.6-3 KB of daily ones.
PERF_HOUR_DAYS = 8
PERF_DAY_DAYS = 400
LEARN_INBOX = f"{PREFIX}:{{model}}:inbox"
LEARN_SHARDS = f"{PREFIX}:{{model}}:shards"
LEARN_LEASE = f"{PREFIX}:{{model}}:lease"
LEARN_POSITIONS = f"{PREFIX}:{{model}}:positions"
LEARN_POSITION = f"{PREFIX}:{{model}}:position"
SHARDS_PER_PRIMARY = 2  # inbox shards per cluster primary at the first start


def perf_hours(day: str) -> str:
    return f"{PREFIX}:{{model}}:perf:h:{day}"


def perf_days(month: str) -> str:
    return f"{PREFIX}:{{model}}:perf:d:{month}"


def inbox(shard: int, shards: int) -> str:
    """The stream of inbox shard `shard` of `shards` (one shard: the inbox of a single Redis)."""
    if shards == 1:
        return LEARN_INBOX
    return f"{PREFIX}:{{{slot_tags()[(2 * shard + 1) * 16384 // (2 * shards)]}}}:inbox"


def inbox_shard(customer_id: str, shards: int) -> int:
    """The inbox shard that carries this customer's events: always the same one, so that its events, its
    tally marks and their positions stay in one stream."""
    return inbox_shard_of_slot(customer_slot(customer_id), shards)


def inbox_shard_of_slot(slot: int, shards: int) -> int:
    return slot * shards // 16384


REWRITE_DUE = f"{PREFIX}:{{ops}}:rewrite_due"
REWRITE_LOCK = f"{PREFIX}:{{ops}}:rewrite_lock"

RULES_CURRENT = f"{PREFIX}:{{rules}}:current"
RULES_HISTORY_KEY = f"{PREFIX}:{{rules}}:history"
RULES_HISTORY = 20
RULES_SOURCE = f"{PREFIX}:{{rules}}:source"
RULES_CHANGES = f"{PREFIX}:{{rules}}:changes"
RULES_CHANGES_MAX = 500
ATTRIBUTE_CODES = f"{PREFIX}:{{rules}}:attributes"


OUTBOUND_RUNS = f"{PREFIX}:{{outbound}}:runs"
OUTBOUND_PRICES = f"{PREFIX}:{{outbound}}:prices"
OUTBOUND_RUN_TTL = 30 * DAY
OUTBOUND_RUNS_KEPT = 200
OUTBOUND_USED_TTL = 8 * DAY


def outbound_run(run_id: str) -> str:
    return f"{PREFIX}:{{outbound}}:run:{run_id}"


def outbound_selection(run_id: str) -> str:
    return f"{PREFIX}:{{outbound}}:run:{run_id}:selection"


def outbound_used(channel: str) -> str:
    return f"{PREFIX}:{{outbound}}:used:{channel}"


OUTBOUND_VOLUME = f"{PREFIX}:{{outbound}}:volume"
OUTBOUND_LOCK = f"{PREFIX}:{{outbound}}:lock"


ACCESS_KEYS = f"{PREFIX}:{{access}}:keys"
ACCESS_USED = f"{PREFIX}:{{access}}:used"
ACCESS_VERSION = f"{PREFIX}:{{access}}:version"
ACCESS_SEALED = f"{PREFIX}:{{access}}:sealed"
ACCESS_BOARD_SECRET = f"{PREFIX}:{{access}}:board"
AUDIT_MAX = 1_000_000  # entries kept at most, whatever their age (about 110 bytes each)
AUDIT_LOG = f"{PREFIX}:{{audit}}:log"
AUDIT_SECRET = f"{PREFIX}:{{audit}}:secret"
AUDIT_RETENTION = 400 * DAY


def rules_set(version: str) -> str:
    return f"{PREFIX}:{{rules}}:set:{version}"
