"""The Prometheus metrics of tidings: names, labels and buckets, one set per registry.

A registry refuses a second metric of the same name, so every `Prometheus` middleware (and
`saga_completed`) on one registry shares the one `Metrics` made for it.

Label sets are bounded: groups, event types, outcome kinds, exception class names, saga
types and statuses, never an event id.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

__all__ = ["GROUP_GAUGES", "METRIC_NAMES", "Metrics", "OutboxGauges", "metrics_for"]

PROCESSING_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0,
)  # fmt: skip
"""Seconds; up to the default handler timeout (300 s)."""
LAG_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0,
)  # fmt: skip
"""Seconds from publish to the start of processing: milliseconds when keeping up, up to an
hour behind."""
SAGA_BUCKETS = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86400.0, 7 * 86400.0)
"""Seconds from a saga's start to its completion: seconds to a week."""

# Gauges read from `bus.stats()`: each worker of `tidings run --processes N` reads the same
# broker-wide numbers, so in multiprocess mode the most recent value of a live process is
# the value (counted once, not summed over the processes).
_SHARED: Final = "livemostrecent"

GROUP_GAUGES = {
    "ready": ("tidings_group_ready", "Deliveries waiting to be taken, per group."),
    "in_flight": (
        "tidings_group_in_flight",
        "Deliveries a consumer holds and has not settled, per group.",
    ),
    "scheduled": (
        "tidings_group_scheduled",
        "Deliveries waiting for a retry or a delayed publish, per group.",
    ),
    "dead": ("tidings_group_dead", "Entries in the group's dead-letter queue."),
    "consumers": ("tidings_group_consumers", "Live consumers attached to the group."),
    "oldest_age": (
        "tidings_group_oldest_age_seconds",
        "Age of the group's oldest ready delivery, in seconds (0 when none).",
    ),
}
"""`GroupStats` field -> (metric name, help)."""

METRIC_NAMES = (
    "tidings_events_published_total",
    "tidings_event_processing_duration_seconds",
    "tidings_event_consumer_lag_seconds",
    "tidings_dlq_events_total",
    "tidings_saga_completions_total",
    "tidings_saga_duration_seconds",
    *(name for name, _ in GROUP_GAUGES.values()),
    "tidings_outbox_pending",
    "tidings_outbox_oldest_age_seconds",
)
"""Every metric tidings exposes (the outbox gauges have values only for a bus with an
outbox, ``Bus(database=...)``)."""


_OUTBOX_HELP = {
    "tidings_outbox_pending": "Messages staged in the outbox and not yet sent.",
    "tidings_outbox_oldest_age_seconds": "Age of the oldest message waiting in the outbox, "
    "in seconds.",
}


@dataclass(frozen=True, slots=True)
class OutboxGauges:
    """The outbox's depth and age, made the first time a bus reports them."""

    pending: Gauge
    oldest_age: Gauge


@dataclass(slots=True)
class Metrics:
    """The metric objects of one registry."""

    registry: CollectorRegistry
    published: Counter
    processing: Histogram
    lag: Histogram
    dlq: Counter
    saga_completions: Counter
    saga_duration: Histogram
    groups: dict[str, Gauge]
    _outbox: OutboxGauges | None = field(default=None, repr=False)

    def outbox(self) -> OutboxGauges:
        """The outbox gauges, made on first use: until a bus reports its outbox they are
        declared without a value (`_UnsetOutbox`) rather than showing a depth of 0 that
        nobody measured."""
        if self._outbox is None:
            pending, oldest = (
                Gauge(name, help_text, multiprocess_mode=_SHARED, registry=None)
                for name, help_text in _OUTBOX_HELP.items()
            )
            self._outbox = OutboxGauges(pending, oldest)  # first: the declaration stops
            self.registry.register(pending)
            self.registry.register(oldest)
        return self._outbox


class _UnsetOutbox:
    """The outbox gauges' HELP and TYPE, without samples, until they are made."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # reserve no name: the gauges take them when they are made

    def collect(self) -> Iterator[Metric]:
        if self._metrics._outbox is None:
            for name, help_text in _OUTBOX_HELP.items():
                yield GaugeMetricFamily(name, help_text)


def _make(registry: CollectorRegistry) -> Metrics:
    metrics = Metrics(
        registry=registry,
        published=Counter(
            "tidings_events_published",
            "Messages published (events, commands, context publishes), by confirm status.",
            ["event_type", "status"],
            registry=registry,
        ),
        processing=Histogram(
            "tidings_event_processing_duration_seconds",
            "Time the consume stack took per delivery, by outcome "
            "(ack, retry, dead_letter, duplicate, postpone).",
            ["group", "event_type", "outcome"],
            registry=registry,
            buckets=PROCESSING_BUCKETS,
        ),
        lag=Histogram(
            "tidings_event_consumer_lag_seconds",
            "Seconds from an event's publish time to the start of its first processing.",
            ["group"],
            registry=registry,
            buckets=LAG_BUCKETS,
        ),
        dlq=Counter(
            "tidings_dlq_events",
            "Deliveries moved to a dead-letter queue, by the exception class behind them.",
            ["group", "event_type", "error_type"],
            registry=registry,
        ),
        saga_completions=Counter(
            "tidings_saga_completions",
            "Saga instances completed, by the status they completed with.",
            ["saga_type", "status"],
            registry=registry,
        ),
        saga_duration=Histogram(
            "tidings_saga_duration_seconds",
            "Seconds from a saga instance's start to its completion.",
            ["saga_type"],
            registry=registry,
            buckets=SAGA_BUCKETS,
        ),
        groups={
            field_name: Gauge(
                name, help_text, ["group"], registry=registry, multiprocess_mode=_SHARED
            )
            for field_name, (name, help_text) in GROUP_GAUGES.items()
        },
    )
    registry.register(_UnsetOutbox(metrics))
    return metrics


_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, Metrics] = weakref.WeakKeyDictionary()


def metrics_for(registry: CollectorRegistry | None = None) -> Metrics:
    """The metrics of `registry` (the global one by default), registered on first use."""
    registry = REGISTRY if registry is None else registry
    found = _BY_REGISTRY.get(registry)
    if found is None:
        found = _BY_REGISTRY[registry] = _make(registry)
    return found
