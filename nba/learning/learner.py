"""The learner: the one writer of the model. Ranking reads a model snapshot, the learner moves it.

Events reach the learner through a Redis stream (the inbox, written right after the customers'
histories: see Store.apply_events). One learner at a time holds a lease; every `nba serve` process
runs one in the background (whoever holds the lease works, the others wait to take over). Per batch
it credits each event to the decision that caused it (CREDIT_EVENTS: exactly once per event id,
cross-channel answers included, nothing after the channel's attribution window), adds the
resulting trials and rewards to the per-segment counts, the contextual model's sufficient statistics
and the model/control tallies, and commits them together with its inbox position and a new model
version in one script that checks the lease. A learner that dies between crediting and committing
leaves the position where it was: the next holder replays those entries and gets the same grants.
The per-action event tally (`/v1/actions/stats`) counts each event id once the same way: through the
grant for an event that answers a decision, through a tally mark its first application left in the
customer's hash for one that does not (see scripts._MARKS).

How far behind: the learner that holds the lease waits for the inbox with a blocking read, so an
event is in the model one batch after it is accepted, and in every serving process's ranking at most
`learning.refresh_seconds` after that (they poll the model version); reported by
`nba_learner_lag_seconds`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Callable

import numpy as np
from redis.exceptions import RedisError

from nba.concurrency import stop_if_cancelled
from nba.learning import forgetting
from nba.learning.contextual import accumulate
from nba.learning.features import unpack
from nba.learning.record import Meta
from nba.metrics import Metrics
from nba.rules.rulebook import Rulebook
from nba.store.contract import EventArgs, LearningCommit, PerfCell, Storage, Tally

log = logging.getLogger(__name__)

LEASE_MS = 10_000
BATCH = 2000
IDLE_SECONDS = 1.0  # the longest one blocking wait for the inbox; the lease is renewed between waits


class Learner:
    def __init__(
        self,
        rules: Callable[[], Rulebook],
        store: Storage,
        metrics: Metrics,
        *,
        batch: int = BATCH,
        lease_ms: int = LEASE_MS,
        idle: float = IDLE_SECONDS,
        clock: Callable[[], float] = time.time,
    ):
        self.rules = rules  # the rule set in use now (rewards, features, action ids)
        self.store = store
        self.metrics = metrics
        self.batch = batch
        self.lease_ms = lease_ms
        self.idle = idle
        self.clock = clock  # when the learner rebases forgotten statistics (forgetting.needs_rebase)
        self.token = secrets.token_hex(8)
        self._held = False
        self._renew_at = 0.0  # monotonic time the held lease is next renewed
        self._position: dict[int, str] = {}  # per inbox shard
        self._rows: dict[str, np.ndarray] = {}  # contextual statistics as committed, by action id
        self._signature = ""
        self._decay = (0.0, 0.0)  # landmark and half-life of the committed statistics

    @property
    def _third_of_lease(self) -> float:
        """Seconds between renewals of a held lease, and between tries at one held by another learner."""
        return self.lease_ms / 3000.0

    async def _hold(self) -> bool:
        """Take or renew the lease; on taking it, start from what is committed in Redis. A held lease is
        renewed a third of the way into its life, not at every step (a busy learner steps after every
        batch): the commit script checks the lease anyway, so a lease lost in between (a pause longer
        than two thirds of it) costs that batch its commit, never its correctness."""
        now = time.monotonic()
        if self._held and now < self._renew_at:
            return True
        held = await self.store.take_lease(self.token, self.lease_ms)
        self._renew_at = now + self._third_of_lease
        if held and not self._held:
            data = await self.store.model_data()
            self._position = await self.store.learner_position()
            self._signature = data.signature
            self._rows = {a: np.frombuffer(row, np.float64).copy() for a, row in data.contextual.items()}
            self._decay = (data.landmark, data.half_life)
            log.info("learner %s holds the lease from inbox position %s", self.token, self._position)
        self._held = held
        return held

    async def step(self) -> int:
        """Apply one batch of the inbox if we hold the lease; the number of entries applied."""
        if not await self._hold():
            return 0
        batch = await self.store.read_inbox(self._position, self.batch)
        if not batch.last:
            self.metrics.learner_lag.set(0)  # caught up: nothing waits to be learned
            return 0
        entries = batch.entries
        rb = self.rules()
        learning = rb.learning
        if forgetting.needs_rebase(self.clock(), *self._decay, learning.half_life) and not await self._rebase(
            learning.half_life
        ):
            return 0
        space = learning.features
        rewards = {(ch, etype): r for ch in rb.channels for etype, r in learning.for_channel(ch).rewards.items()}
        grants = await self.store.credit_events(entries, rewards, self._position)

        # what each entry's answer adds: its weight at the time the server accepted it (the inbox id)
        landmark, half_life = self._decay
        times = np.array([int(entry_id.split("-", 1)[0]) / 1000.0 for entry_id, _ in entries])
        weight = forgetting.weights(times, landmark, half_life).tolist()
        counts: dict[tuple[Tally, str], float] = defaultdict(float)
        board: dict[PerfCell, float] = defaultdict(float)  # the board's counters (each event id once)
        credited: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])  # for metrics
        ctx_actions: list[int] = []
        ctx_x: list[np.ndarray] = []
        ctx_trial: list[float] = []
        ctx_reward: list[float] = []
        signature = space.signature
        reset = signature != self._signature
        for (_, event), grant, w in zip(entries, grants, weight, strict=True):
            index = rb.action_index.get(event.action_id)
            if grant.counted:
                counts[(Tally.EVENTS, f"{event.action_id}:{event.type}")] += 1
                meta_text = grant.meta if grant.status != "bad" else ""  # a damaged record names no channel
                board[_cell(event, meta_text, event.type)] += 1
                if event.type == "accept" and index is not None:  # what the accepted offers are worth
                    board[_cell(event, meta_text, "value")] += rb.actions[index].value
            if grant.status == "bad":
                self.store.unreadable("decision_meta", event.customer_id, grant.meta)
            if grant.status != "granted" or not (grant.trial or grant.reward):
                continue
            try:
                meta = Meta.parse(grant.meta)
            except ValueError:  # a damaged decision record: its answers cannot be learned from
                self.store.unreadable("decision_meta", event.customer_id, grant.meta)
                continue
            tally = credited[(event.action_id, meta.channel, meta.arm)]
            tally[0] += grant.trial
            tally[1] += grant.reward
            if grant.trial:
                counts[(Tally.COUNTS, f"n:{event.action_id}:{meta.segment_key}")] += grant.trial * w
                counts[(Tally.ARMS, f"n:{meta.arm}")] += grant.trial
            if grant.reward:
                counts[(Tally.COUNTS, f"r:{event.action_id}:{meta.segment_key}")] += grant.reward * w
                counts[(Tally.ARMS, f"r:{meta.arm}")] += grant.reward
            if meta.signature == signature and index is not None and space.features:
                ctx_actions.append(index)
                ctx_x.append(unpack(meta.features, space.dim))
                ctx_trial.append(grant.trial * w)
                ctx_reward.append(grant.reward * w)
        rows = {} if reset else dict(self._rows)
        touched = _add_rows(rb, rows, ctx_actions, ctx_x, ctx_trial, ctx_reward)
        last = {**self._position, **batch.last}
        increments = [(h, f, v) for (h, f), v in counts.items() if v]
        commit = LearningCommit(batch.last, increments, touched, signature, reset, board)
        if not await self.store.commit_learning(self.token, self.lease_ms, commit):
            self._held = False  # someone else took over: our view is stale, reload when we get it back
            log.warning("learner %s lost the lease; batch left to the holder", self.token)
            return 0
        self._position, self._rows, self._signature = last, rows, signature
        self.metrics.learner_events.inc(len(entries))
        self._count_credits(rb, credited)
        # the shard furthest behind: the newest entry applied of each shard read, the oldest of those
        behind = min(int(entry.split("-")[0]) for entry in batch.last.values()) / 1000.0
        self.metrics.learner_lag.set(max(0.0, time.time() - behind))
        marked = {event.customer_id for (_, event), grant in zip(entries, grants, strict=True) if grant.marked}
        try:
            await self.store.clear_tally_marks(marked, last)
        except (RedisError, OSError):  # harmless: the customer's next credit drops them as well
            log.debug("clearing tally marks failed", exc_info=True)
        return max(1, len(entries))  # a batch of only unreadable entries still moved the position

    def _count_credits(self, rb: Rulebook, credited: dict[tuple[str, str, str], list[float]]) -> None:
        """The per-action business counters, once the batch is committed (so each credit counts once)."""
        m = self.metrics
        for (action, channel, arm), (trials, rewards) in credited.items():
            if trials:
                m.child(m.trials, action, channel, arm).inc(trials)
            if rewards:
                m.child(m.rewards, action, channel, arm).inc(rewards)
                index = rb.action_index.get(action)
                if index is not None:
                    m.child(m.value, action, channel, arm).inc(rewards * rb.actions[index].value)

    async def _rebase(self, half_life: float) -> bool:
        """Express the committed statistics against a landmark of now (and the wanted half-life): their
        values as of now, so readers see the same model before and after. False if the lease was lost."""
        now = self.clock()
        data = forgetting.at(await self.store.model_data(), now)
        if not await self.store.rebase_model(self.token, self.lease_ms, data.counts, data.contextual, now, half_life):
            self._held = False
            return False
        self._rows = {a: np.frombuffer(row, np.float64).copy() for a, row in data.contextual.items()}
        self._decay = (now, half_life)
        log.info("learner %s rebased the model statistics (half-life %gs)", self.token, half_life)
        return True

    async def drain(self) -> int:
        """Apply everything in the inbox now (tests, loadtests/seed.py)."""
        total = 0
        while n := await self.step():
            total += n
        return total

    async def run(self) -> None:
        """Forever: apply batches while there are any, otherwise wait for the next event (the holder) or
        for a chance at the lease (the others); errors are counted and retried (a Redis hiccup must not
        stop learning for the life of the process). Waiting with a blocking read rather than polling
        wakes an idle server once a second instead of ten times."""
        while True:
            try:
                if await self.step() == 0:
                    if not self._held:
                        await asyncio.sleep(self._third_of_lease)
                    else:
                        await self.store.wait_inbox(self._position, self.idle)
            except Exception:
                stop_if_cancelled()
                self.metrics.learner_errors.inc()
                log.warning("learner step failed", exc_info=True)
                self._held = False
                await asyncio.sleep(self._third_of_lease)

    async def stop(self) -> None:
        if self._held:
            await self.store.release_lease(self.token)
            self._held = False


def _add_rows(
    rb: Rulebook,
    rows: dict[str, np.ndarray],
    actions: list[int],
    x: list[np.ndarray],
    trials: list[float],
    rewards: list[float],
) -> dict[str, bytes]:
    """Add a batch's examples to the contextual rows (in place); the rows it changed, as stored."""
    if not actions:
        return {}
    dim = rb.learning.features.dim
    sums = accumulate(
        dim, np.array(actions, np.int64), np.array(x), np.array(trials), np.array(rewards), len(rb.actions)
    )
    width = 1 + dim + dim * dim
    touched: dict[str, bytes] = {}
    for i in sorted(set(actions)):
        action_id = rb.actions[i].id
        old = rows.get(action_id)
        row = sums.row(i) + (old if old is not None and old.shape[0] == width else 0.0)
        rows[action_id] = row
        touched[action_id] = row.tobytes()
    return touched


def _cell(event: EventArgs, meta: str, measure: str) -> PerfCell:
    """Where the board counts an event: in the hour it happened, on the channel and arm of the decision it
    answers (an offer sent by e-mail and accepted on the web counts for e-mail), else its own channel."""
    parts = meta.split("|", 3)
    channel, arm = (parts[0], parts[2]) if len(parts) == 4 else (event.channel, "none")
    return PerfCell(event.ts_ms // 3_600_000, event.action_id, channel, arm, measure)
