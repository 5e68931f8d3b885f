"""Every Prometheus metric of nba, on an injected registry (tests get their own).

Times are in seconds, Prometheus's base unit. Counters carry no `_created` series: nothing reads them,
and they doubled the series count.

`nba serve --workers N` runs N processes behind one port, and a scrape reaches whichever of them the
kernel picks; each must answer for the whole server. prometheus_client's multiprocess mode does that:
the supervising process names one directory before it starts the workers (prometheus_client chooses
where values live when it is imported), every worker writes its values to memory-mapped files there,
and the worker that answers /metrics adds up every worker's files. Counters of a worker that died stay
counted; gauges say how they combine (`multiprocess_mode`). One process keeps plain in-memory values,
which are cheaper to count into.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

M = TypeVar("M", Counter, Gauge, Histogram)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable

RELOAD_OUTCOMES = ("applied", "invalid", "error")
# the stored records store.unreadable names (store/unreadable.py)
UNREADABLE_RECORDS = (
    "profile",
    "history_entry",
    "decision_record",
    "decision_answer",
    "decision_meta",
    "inbox_entry",
    "rules_set",
    "api_key",
    "key_last_used",
)
_SECONDS_BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0)

disable_created_metrics()  # type: ignore[no-untyped-call]


def multiprocess() -> bool:
    """Whether this process's values are shared with the other workers (see the module's docstring)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # what /metrics shows: this process's registry, or every worker's files and the collectors that
        # already see the whole server (register_collector)
        self._exposed = r
        if multiprocess():
            self._exposed = CollectorRegistry()
            MultiProcessCollector(self._exposed, os.environ[MULTIPROCESS_DIR])  # type: ignore[no-untyped-call]
        self._sampled: list[tuple[Gauge, Callable[[], float]]] = []

        # ---- decisions
        self.decisions = Counter(
            "nba_decisions_total",
            "Decisions answered, by channel and outcome (actions, empty, degraded, dry_run, repeat, conflict)",
            ["channel", "outcome"],
            registry=r,
        )
        self.decision_conflicts = Counter(
            "nba_decision_conflicts_total", "Decisions ranked again because the customer's history changed", registry=r
        )
        self.decision_stalls = Counter(
            "nba_decision_stalls_total",
            "Decision deadlines that found this process stalled (a pause, GC or long "
            "callback) and gave the decision a fresh deadline instead of degrading it",
            registry=r,
        )
        self.decision_seconds = Histogram(
            "nba_decision_duration_seconds",
            "Time to answer a decide request",
            ["channel"],
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )

        # ---- per action: what the business reads (shown, answered, earned), model against control group
        def per_action(name: str, text: str, last: str = "arm") -> Counter:
            return Counter(f"nba_action_{name}_total", text, ["action", "channel", last], registry=r)

        self.proposals = per_action("proposals", "Actions returned in recorded decisions (arm: model or control)")
        self.action_events = per_action("events", "Events kept about an action (impression, accept, ...)", "type")
        self.trials = per_action("trials", "Shown actions the learner credited (one per decision and action)")
        self.rewards = per_action(
            "rewards", "Rewards the learner credited (the best answer per shown action, weighted by the channel)"
        )
        self.value = per_action("value", "Value earned: credited rewards times the action's value in the rules")
        # ---- events and learning
        self.events = Counter(
            "nba_events_total", "Events received, by type and outcome", ["type", "outcome"], registry=r
        )
        self.learner_events = Counter("nba_learner_events_total", "Inbox events applied by the learner", registry=r)
        self.learner_errors = Counter("nba_learner_errors_total", "Learner batches that failed (retried)", registry=r)
        self.learner_lag = Gauge(
            "nba_learner_lag_seconds",
            "Age of the newest event in the last learner batch (0 once the inbox is empty)",
            registry=r,
            multiprocess_mode="livemostrecent",  # only the lease holder sets it
        )
        self.model_version = Gauge(
            "nba_model_version", "Model statistics version in use", registry=r, multiprocess_mode="livemax"
        )
        self.model_refresh_errors = Counter(
            "nba_model_refresh_errors_total", "Failed refreshes of the in-memory model", registry=r
        )
        self.arm_shown = Gauge(
            "nba_arm_shown",
            "Shown actions credited, by arm (model or control), in the model's statistics (decayed)",
            ["arm"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.arm_reward = Gauge(
            "nba_arm_reward",
            "Rewards credited, by arm (model or control), in the model's statistics (decayed)",
            ["arm"],
            registry=r,
            multiprocess_mode="livemax",
        )
        # ---- rules
        self.rules_info = Gauge(
            "nba_rules_info",
            "1 for the rules version in use, 0 for versions used before",
            ["version"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self._rules_version: str | None = None
        self.rules_reloads = Counter("nba_rules_reloads_total", "Rule set reloads by outcome", ["outcome"], registry=r)
        # ---- Redis
        self.redis_seconds = Histogram(
            "nba_redis_call_duration_seconds", "Redis round trip", ["op"], buckets=_SECONDS_BUCKETS, registry=r
        )
        self.redis_errors = Counter(
            "nba_redis_errors_total",
            "Redis calls that failed or that the caller stopped waiting for (a decision's deadline)",
            ["op"],
            registry=r,
        )
        self.redis_up = Gauge(
            "nba_redis_up",
            "1 when the last periodic model refresh reached Redis, 0 when it failed (the lowest of all workers)",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.unreadable = Counter(
            "nba_unreadable_records_total",
            "Stored records that could not be parsed: skipped (history and inbox entries, "
            "decision records) or answered degraded (profiles)",
            ["record"],
            registry=r,
        )
        self.erasure_rewrites = Counter(
            "nba_erasure_rewrites_total",
            "Requests to Redis to rewrite its files on disk after erasures, by outcome (started, busy, refused)",
            ["outcome"],
            registry=r,
        )
        # ---- HTTP
        self.requests = Counter(
            "nba_http_requests_total", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "nba_http_request_duration_seconds",
            "Time from the request's arrival at nba's handlers to its response, by route",
            ["route"],
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self.connections = Gauge(
            "nba_http_connections", "Open HTTP connections", registry=r, multiprocess_mode="livesum"
        )
        self.dropped_connections = Counter(
            "nba_http_connections_dropped_total",
            "Connections closed at the connection cap: idle_closed (the "
            "longest-idle, to make room) or refused (all busy: answered 503)",
            ["reason"],
            registry=r,
        )
        self.access_refused = Counter(
            "nba_access_refused_total",
            "Requests refused by access control: missing_key, invalid_key (401), forbidden, customer_token (403), "
            "rate_limited (429)",
            ["reason"],
            registry=r,
        )
        self.api_keys = Gauge(
            "nba_api_keys",
            "API keys the server knows (0: open server on loopback)",
            registry=r,
            multiprocess_mode="livemax",
        )

        # labels() validates and locks on every call; the hot path counts a few times per request
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        # exported at 0 from the start: increase() over a series that appears with its first failure at 1
        # is 0, and an alert on it would miss that first failure (often the only one)
        for counter, known in (
            (self.rules_reloads, RELOAD_OUTCOMES),
            (self.unreadable, UNREADABLE_RECORDS),
            (self.dropped_connections, ("idle_closed", "refused")),
        ):
            for label in known:
                self.child(counter, label)

    def exposition(self) -> bytes:
        """The text /metrics answers with."""
        return generate_latest(self._exposed)

    def register_collector(self, collector: Collector) -> None:
        """A collector whose numbers already describe the whole server (shared memory, Redis)."""
        self.registry.register(collector)
        if self._exposed is not self.registry:
            self._exposed.register(collector)

    def track(self, gauge: Gauge, read: Callable[[], float]) -> None:
        """`gauge` reads `read()`: at each scrape in one process; with workers, each worker's value is
        written every second by `sample_forever()`, since a scrape reads only files."""
        if multiprocess():
            self._sampled.append((gauge, read))
        else:
            gauge.set_function(read)

    @property
    def sampled(self) -> bool:
        return bool(self._sampled)

    async def sample_forever(self, every: float = 1.0) -> None:
        while True:
            for gauge, read in self._sampled:
                gauge.set(read())
            await asyncio.sleep(every)

    def child(self, metric: M, *labels: str) -> M:
        """`metric.labels(*labels)`, remembered: label values come from finite sets (channels, outcomes,
        routes, statuses, operations, the rules' actions), so this stays small."""
        key = (id(metric), labels)
        found: M | None = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def totals(self, metric: str, label: str) -> dict[str, float]:
        """A counter's totals by one of its labels, as /metrics would show them (every worker's)."""
        out: dict[str, float] = {}
        for family in self._exposed.collect():
            if family.name != metric:
                continue
            for sample in family.samples:
                if sample.name == f"{metric}_total":
                    key = sample.labels.get(label, "")
                    out[key] = out.get(key, 0.0) + sample.value
        return out

    def rules_in_use(self, version: str) -> None:
        if self._rules_version is not None and self._rules_version != version:
            self.rules_info.labels(self._rules_version).set(0)
        self.rules_info.labels(version).set(1)
        self._rules_version = version

    def count_proposals(self, channel: str, arm: str, actions: Iterable[str]) -> None:
        for action in actions:
            self.child(self.proposals, action, channel, arm).inc()

    def count_dropped_connection(self, reason: str) -> None:
        self.child(self.dropped_connections, reason).inc()

    def count_unreadable(self, record: str) -> None:
        self.child(self.unreadable, record).inc()

    def observe_redis(self, op: str, seconds: float, failed: bool = False) -> None:
        self.child(self.redis_seconds, op).observe(seconds)
        if failed:
            self.child(self.redis_errors, op).inc()
