"""Every Prometheus metric of nba, on an injected registry (tests get their own)."""

from __future__ import annotations

from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

M = TypeVar("M", Counter, Gauge, Histogram)

_MS_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 25, 50, 100, 250, 1000)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.decisions = Counter("nba_decisions_total", "Decisions answered", ["channel", "outcome"], registry=r)
        self.decision_conflicts = Counter(
            "nba_decision_conflicts_total", "Decisions ranked again because the customer's history changed", registry=r
        )
        self.decision_stalls = Counter(
            "nba_decision_stalls_total",
            "Decision deadlines that found this process stalled (a pause, GC or long "
            "callback) and gave the decision a fresh deadline instead of degrading it",
            registry=r,
        )
        self.decision_ms = Histogram(
            "nba_decision_duration_ms",
            "Time to answer a decide request, ms",
            ["channel"],
            buckets=_MS_BUCKETS,
            registry=r,
        )
        self.events = Counter(
            "nba_events_total", "Events received, by type and outcome", ["type", "outcome"], registry=r
        )
        self.redis_ms = Histogram(
            "nba_redis_call_duration_ms", "Redis round trip, ms", ["op"], buckets=_MS_BUCKETS, registry=r
        )
        self.redis_errors = Counter("nba_redis_errors_total", "Redis calls that failed", ["op"], registry=r)
        self.rules = Info("nba_rules", "Rules version in use", registry=r)
        self.rules_reloads = Counter("nba_rules_reloads_total", "Rule set reloads by outcome", ["outcome"], registry=r)
        self.model_version = Gauge("nba_model_version", "Model statistics version in use", registry=r)
        self.model_refresh_errors = Counter(
            "nba_model_refresh_errors_total", "Failed refreshes of the in-memory model", registry=r
        )
        self.learner_events = Counter(
            "nba_learner_events_total", "Inbox events applied by this process's learner", registry=r
        )
        self.learner_errors = Counter("nba_learner_errors_total", "Learner batches that failed (retried)", registry=r)
        self.learner_lag = Gauge(
            "nba_learner_lag_seconds", "Age of the newest event in the last committed learner batch", registry=r
        )
        self.arm_shown = Gauge(
            "nba_arm_shown", "Shown actions credited, by arm (model or control)", ["arm"], registry=r
        )
        self.arm_reward = Gauge("nba_arm_reward", "Rewards credited, by arm (model or control)", ["arm"], registry=r)
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
        self.connections = Gauge("nba_http_connections", "Open HTTP connections of this process", registry=r)
        self.dropped_connections = Counter(
            "nba_http_connections_dropped_total",
            "Connections closed at the connection cap: idle_closed (the "
            "longest-idle, to make room) or refused (all busy: answered 503)",
            ["reason"],
            registry=r,
        )
        self.requests = Counter(
            "nba_http_requests_total", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.access_refused = Counter(
            "nba_access_refused_total",
            "Requests refused by access control: missing_key, invalid_key (401), forbidden, customer_token (403), "
            "rate_limited (429)",
            ["reason"],
            registry=r,
        )
        self.api_keys = Gauge("nba_api_keys", "API keys this process knows (0: open server on loopback)", registry=r)

        # labels() validates and locks on every call; the hot path counts a few times per request
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: M, *labels: str) -> M:
        """`metric.labels(*labels)`, remembered: label values come from finite sets (channels, outcomes,
        routes, statuses, operations), so this stays small."""
        key = (id(metric), labels)
        found: M | None = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def count_dropped_connection(self, reason: str) -> None:
        self.child(self.dropped_connections, reason).inc()

    def count_unreadable(self, record: str) -> None:
        self.child(self.unreadable, record).inc()

    def observe_redis(self, op: str, ms: float, failed: bool = False) -> None:
        self.child(self.redis_ms, op).observe(ms)
        if failed:
            self.child(self.redis_errors, op).inc()
