"""What ``tidings demo`` and the tests need to know about a scenario, and how they watch it.

A `Scenario` builds the scenario's bus, publishes its workload, and names the outcome
events a `Tracker` listens to. The tracker is a group of its own (``demo-observer``) on a
separate bus in the demo's process, so it sees the outcomes of worker processes just as
it sees those of handlers running in the same process.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tidings import Bus, Context

from .plan import Settings

__all__ = ["OBSERVER_GROUP", "Audit", "Scenario", "Tracker", "build_bus"]

Attach = Callable[[Bus, Settings], None]


def build_bus(
    url: str | None,
    settings: Settings,
    services: Mapping[str, Attach],
    *,
    consume: bool = True,
    middleware: Iterable[Any] = (),
    name: str = "tidings",
    dedupe: str | None = None,
    **options: Any,
) -> Bus:
    """A scenario's bus on `url` with `services` attached.

    Outcome events may have no subscriber yet (an order completed while no dashboard
    listens), hence ``on_unroutable="ignore"``; every step of a flow has its group declared
    when the bus starts. `name`, `dedupe` and `options` go to `Bus` unchanged.
    """
    bus = Bus(
        url,
        name=name,
        dedupe=dedupe,
        consume=consume,
        middleware=middleware,
        lease=settings.lease,
        on_unroutable="ignore",
        **options,
    )
    for attach in services.values():
        attach(bus, settings)
    return bus


OBSERVER_GROUP = "demo-observer"


@dataclass(frozen=True, slots=True)
class Audit:
    """A scenario's end state read from its own databases, not from the events seen.

    Attributes:
        counts: outcome counts (they replace the tracker's in the summary).
        invariants: each rule that must hold whatever crashed, and whether it does.
    """

    counts: dict[str, int]
    invariants: dict[str, bool]


@dataclass(slots=True)
class Tracker:
    """Outcomes seen so far: for each outcome name, the keys (order ids, event ids) it
    happened to, and the end-to-end latency of every key that reached its last step."""

    outcomes: dict[str, set[str]] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    latencies: dict[str, float] = field(default_factory=dict)

    def published(self, key: str) -> None:
        """`key` entered the system now."""
        self.started.setdefault(key, time.monotonic())

    def saw(self, outcome: str, key: str, *, final: bool = False) -> None:
        """`outcome` happened to `key`; `final` marks the end of its journey."""
        self.outcomes.setdefault(outcome, set()).add(key)
        if final and key not in self.latencies and key in self.started:
            self.latencies[key] = time.monotonic() - self.started[key]

    def count(self, outcome: str) -> int:
        """How many distinct keys `outcome` happened to."""
        return len(self.outcomes.get(outcome, ()))

    def keys(self, outcome: str) -> set[str]:
        """The keys `outcome` happened to."""
        return set(self.outcomes.get(outcome, ()))


class Scenario(ABC):
    """One example application, as the demo runs it.

    Attributes:
        name: what ``tidings demo NAME`` calls it.
        unit: what one published item is ("orders").
        default_count: how many items the demo publishes unless told.
        groups: the scenario's groups, in the order of the flow.
        worker: the ``module:bus`` target a worker process runs.
        outcome_types: the event types the tracker subscribes to.
        uses_database: True when the scenario's services need a ``database`` (given to
            their bus as a bus option).
    """

    name: str
    unit: str
    default_count: int
    groups: tuple[str, ...]
    worker: str
    outcome_types: tuple[str, ...]
    uses_database: bool = False

    @abstractmethod
    def create_bus(
        self,
        url: str | None,
        settings: Settings,
        *,
        consume: bool = True,
        middleware: Iterable[Any] = (),
        **options: Any,
    ) -> Bus:
        """The scenario's bus with every service attached; `options` (``name``,
        ``dedupe``, transport options) go to `Bus`."""

    @abstractmethod
    async def publish(self, bus: Bus, number: int, settings: Settings, tracker: Tracker) -> None:
        """Publish workload item `number` (1-based) and tell `tracker` about it."""

    @abstractmethod
    def track(
        self, event_type: str, data: Mapping[str, Any], ctx: Context, tracker: Tracker
    ) -> None:
        """Record an outcome event the observer received."""

    @abstractmethod
    def done(self, tracker: Tracker) -> int:
        """How many items reached the end of their journey (for the progress bar)."""

    @abstractmethod
    def finished(self, tracker: Tracker, count: int, dead: Mapping[str, int]) -> bool:
        """True once all `count` items went as far as they will go."""

    @abstractmethod
    def summary(self, tracker: Tracker, count: int, dead: Mapping[str, int]) -> dict[str, int]:
        """The scenario's final counts (what the demo prints and the tests check)."""

    @abstractmethod
    def expected(self, settings: Settings, count: int) -> dict[str, int]:
        """The counts `summary` must show, computed from the seeded plan alone."""

    @abstractmethod
    def describe(self, counts: Mapping[str, int]) -> str:
        """One sentence about the final counts, for people."""

    async def prepare(self, bus: Bus) -> None:
        """Make the scenario's own state ready for a run, once `bus` (the services' bus)
        has started and before any workload (nothing by default)."""
        return None

    async def audit(self, bus: Bus) -> Audit | None:
        """Read the end state from the scenario's own databases (None: it keeps none)."""
        return None

    def observer(self, url: str, tracker: Tracker, *, name: str = "tidings", **options: Any) -> Bus:
        """A bus with one group, ``demo-observer``, recording the outcome events; `name`
        must be the services' bus name (on RabbitMQ, the exchange they publish to)."""
        options.pop("database", None)  # the services' own
        bus = Bus(url, name=name, on_unroutable="ignore", **options)
        for event_type in self.outcome_types:

            @bus.subscribe(event_type, group=OBSERVER_GROUP, concurrency=64)
            async def record(data: dict[str, Any], ctx: Context) -> None:
                self.track(ctx.envelope.type, data, ctx, tracker)

        return bus
