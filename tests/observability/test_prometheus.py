"""`Prometheus()`: what a bus publishes and consumes, its groups and its outbox, recorded on a
registry of the test's own."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession

from tidings import Bus, Context, Event, Outcome, Retry, Unroutable
from tidings.observability import Prometheus, saga_completed
from tidings.testing import ManualClock, TestBus


class OrderPlaced(Event, type="order.placed", version=1):
    order_id: str


class StockReserved(Event, type="stock.reserved", version=1):
    order_id: str


class Refunded(Event, type="order.refunded", version=1):
    amount: int


class Cancelled(Event, type="order.cancelled", version=1):
    order_id: str


class CardDeclined(Exception):
    pass


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def shop(prometheus: Prometheus, *, name: str = "tidings") -> Bus:
    """inventory reserves (failing the first attempt of o-2); billing dead-letters o-3."""
    bus = Bus("memory://", name=name, middleware=[prometheus])

    @bus.subscribe("order.placed", group="inventory", retry=Retry(attempts=3, base=1.0))
    async def reserve(event: OrderPlaced, ctx: Context) -> None:
        if event.order_id == "o-2" and ctx.attempt == 1:
            raise ConnectionError("stock service down")
        await ctx.publish(StockReserved(order_id=event.order_id))

    @bus.subscribe("order.placed", group="billing", idempotent=True, retry=Retry(attempts=1))
    async def bill(event: OrderPlaced) -> None:
        if event.order_id == "o-3":
            raise CardDeclined("insufficient funds")

    @bus.subscribe("stock.reserved", group="shipping")
    async def ship(event: StockReserved) -> None:
        pass

    return bus


async def test_publishing_and_processing_are_counted_by_outcome() -> None:
    # Given a bus with Prometheus() on a registry of its own, and a clock we move
    registry = CollectorRegistry()
    clock = ManualClock()
    bus = shop(Prometheus(registry=registry, clock=clock))

    # When three orders are published, one of them twice with the same id, one retried
    # once and one dead-lettered, with 2 s between publishing and processing
    async with TestBus(bus, clock=clock) as tb:
        await bus.publish(OrderPlaced(order_id="o-1"), id="evt-1")
        await bus.publish(OrderPlaced(order_id="o-1"), id="evt-1")
        await bus.publish(OrderPlaced(order_id="o-2"))
        await bus.publish(OrderPlaced(order_id="o-3"))
        clock.advance(2.0)
        await tb.drain(retries=True)
        with pytest.raises(Unroutable):
            await bus.publish(Refunded(amount=1))  # no group takes it

    # Then publishes count by type and confirm status, the handlers' context publishes too
    published = "tidings_events_published_total"
    assert value(registry, published, event_type="order.placed", status="success") == 4
    assert value(registry, published, event_type="stock.reserved", status="success") == 4
    assert value(registry, published, event_type="order.refunded", status="failure") == 1

    # and each delivery is timed under the outcome that was settled
    def processed(group: str, outcome: str, event_type: str = "order.placed") -> float | None:
        name = "tidings_event_processing_duration_seconds_count"
        return value(registry, name, group=group, event_type=event_type, outcome=outcome)

    assert processed("inventory", "ack") == 4
    assert processed("inventory", "retry") == 1
    assert processed("billing", "ack") == 2
    assert processed("billing", "duplicate") == 1
    assert processed("billing", "dead_letter") == 1
    assert processed("shipping", "ack", "stock.reserved") == 4

    # and a dead letter counts under its exception's class name
    dlq = "tidings_dlq_events_total"
    labels = {"group": "billing", "event_type": "order.placed"}
    assert value(registry, dlq, **labels, error_type="CardDeclined") == 1

    # and the lag of first deliveries is the time since publishing (the retry not counted)
    assert value(registry, "tidings_event_consumer_lag_seconds_count", group="inventory") == 4
    assert value(registry, "tidings_event_consumer_lag_seconds_sum", group="inventory") == 8.0
    lag_bucket = "tidings_event_consumer_lag_seconds_bucket"
    assert value(registry, lag_bucket, group="inventory", le="1.0") == 0
    assert value(registry, lag_bucket, group="inventory", le="2.5") == 4


async def test_postponed_invalid_and_unexplained_deliveries_are_counted() -> None:
    # Given a middleware, inside Prometheus(), that postpones the first delivery and
    # dead-letters cancellations without an exception
    registry = CollectorRegistry()

    class Policy:
        postponed = False

        async def consume(self, ctx: Context, call_next: Any) -> Outcome | None:
            if ctx.envelope.type == "order.cancelled":
                return Outcome.dead_letter("cancellations are not audited")
            if not self.postponed:
                self.postponed = True
                return Outcome.postpone(1.0, "not now")
            return await call_next()

    bus = Bus("memory://", middleware=[Prometheus(registry=registry), Policy()])

    @bus.subscribe("order.*", group="audit")
    async def audit(event: OrderPlaced) -> None:
        pass

    # When an event is postponed then handled, one is invalid for the handler and one is
    # dead-lettered by the middleware
    async with TestBus(bus) as tb:
        await bus.publish(OrderPlaced(order_id="o-1"))
        await tb.drain(retries=True)
        await bus.publish(Refunded(amount=3))  # no order_id: invalid
        await bus.publish(Cancelled(order_id="o-1"))
        await tb.drain()

    # Then the postponement has an outcome of its own
    name = "tidings_event_processing_duration_seconds_count"
    labels = {"group": "audit", "event_type": "order.placed"}
    assert value(registry, name, **labels, outcome="postpone") == 1
    assert value(registry, name, **labels, outcome="ack") == 1

    # and dead letters count under their exception's class, "none" without one
    dlq = "tidings_dlq_events_total"
    invalid = {"group": "audit", "event_type": "order.refunded", "error_type": "ValidationError"}
    assert value(registry, dlq, **invalid) == 1
    unexplained = {"group": "audit", "event_type": "order.cancelled", "error_type": "none"}
    assert value(registry, dlq, **unexplained) == 1


async def test_group_gauges_come_from_the_bus_stats() -> None:
    # Given a bus whose billing group holds a dead letter and inventory a waiting event
    registry = CollectorRegistry()
    prometheus = Prometheus(registry=registry)
    bus = shop(prometheus)
    async with TestBus(bus) as tb:
        await bus.publish(OrderPlaced(order_id="o-3"))
        await tb.drain()
        await bus.send(OrderPlaced(order_id="o-4"), to="inventory", delay=60.0)

        # When the gauges are refreshed
        await prometheus.refresh(bus)

    # Then each group has each gauge, labelled by group
    for group in ("inventory", "billing", "shipping"):
        for gauge in (
            "tidings_group_ready", "tidings_group_in_flight", "tidings_group_scheduled",
            "tidings_group_dead", "tidings_group_consumers", "tidings_group_oldest_age_seconds",
        ):  # fmt: skip
            assert value(registry, gauge, group=group) is not None, (gauge, group)
    assert value(registry, "tidings_group_dead", group="billing") == 1
    assert value(registry, "tidings_group_scheduled", group="inventory") == 1
    assert value(registry, "tidings_group_consumers", group="billing") == 1

    # and a bus without an outbox leaves the outbox gauges declared, without a value
    assert value(registry, "tidings_outbox_pending") is None
    declared = {f.name: f.samples for f in registry.collect()}
    assert declared["tidings_outbox_pending"] == []
    assert declared["tidings_outbox_oldest_age_seconds"] == []


@dataclass(frozen=True)
class FakeOutboxStats:
    pending: int
    dead: int
    oldest_age: float


class BusWithOutbox(Bus):
    """A bus with an outbox, as `Bus(database=...)` will be: `outbox_stats()`."""

    database = "sqlite+aiosqlite:///app.db"

    async def outbox_stats(self) -> FakeOutboxStats:
        return FakeOutboxStats(pending=3, dead=1, oldest_age=12.5)


async def test_outbox_gauges_for_a_bus_with_an_outbox() -> None:
    # Given a bus with an outbox
    registry = CollectorRegistry()
    prometheus = Prometheus(registry=registry)
    bus = BusWithOutbox("memory://", middleware=[prometheus])

    # When the gauges are refreshed
    async with TestBus(bus):
        await prometheus.refresh(bus)

    # Then the outbox's depth and age are there, each once
    assert value(registry, "tidings_outbox_pending") == 3
    assert value(registry, "tidings_outbox_oldest_age_seconds") == 12.5
    names = [f.name for f in registry.collect()]
    assert names.count("tidings_outbox_pending") == 1


async def test_outbox_gauges_of_a_real_outbox(tmp_path: Path) -> None:
    # Given a bus with an outbox, a message staged in a transaction and sent by the relay
    registry = CollectorRegistry()
    prometheus = Prometheus(registry=registry)
    database = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    bus = Bus("memory://", database=database, middleware=[prometheus])

    @bus.subscribe("order.placed", group="inventory")
    async def reserve(event: OrderPlaced) -> None:
        pass

    async with TestBus(bus) as tb:
        async with AsyncSession(bus.database) as session, session.begin():
            await bus.publish(OrderPlaced(order_id="o-1"), session=session)
        await tb.drain()

        # When the gauges are refreshed
        await prometheus.refresh(bus)
        stats = await bus.outbox_stats()

    # Then they say what the outbox says: nothing pending once the relay sent it
    assert stats.pending == 0
    assert value(registry, "tidings_outbox_pending") == 0
    assert value(registry, "tidings_outbox_oldest_age_seconds") == stats.oldest_age


def test_saga_completions_and_durations() -> None:
    # Given two middleware on one registry (they share its metrics)
    registry = CollectorRegistry()
    prometheus = Prometheus(registry=registry)
    Prometheus(registry=registry)

    # When sagas complete
    prometheus.saga_completed("checkout", "completed", 42.0)
    saga_completed("checkout", "compensated", 900.0, registry=registry)
    saga_completed("checkout", "completed", 3.0, registry=registry)

    # Then completions count by status, durations by saga type
    name = "tidings_saga_completions_total"
    assert value(registry, name, saga_type="checkout", status="completed") == 2
    assert value(registry, name, saga_type="checkout", status="compensated") == 1
    assert value(registry, "tidings_saga_duration_seconds_count", saga_type="checkout") == 3
    assert value(registry, "tidings_saga_duration_seconds_sum", saga_type="checkout") == 945.0


def test_importing_tidings_imports_no_observability_library() -> None:
    code = (
        "import sys, tidings, tidings._cli.app, tidings.observability, tidings.testing\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('prometheus_client', 'opentelemetry'))\n"
        "print(loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_a_missing_library_is_named_with_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['prometheus_client'] = None\n"
        "try:\n"
        "    from tidings.observability import Prometheus\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "from tidings.observability import OpenTelemetry\n"  # the other one still loads
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == (
        "tidings.observability.Prometheus needs prometheus-client: "
        "pip install 'tidings[observability]'"
    )
