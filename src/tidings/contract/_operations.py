"""Contract: stats and alerts, replay from the retained log, lifecycle."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from .._core.bus import Bus
from .._core.context import Context
from .._exceptions import NotSupported, Permanent, StateError
from ..transports._transport import CAP_DEDUPE, CAP_REPLAY_LOG
from ._events import OrderPlaced
from ._harness import FixedDelay, Harness, group_stats

__all__ = ["LifecycleContract", "ReplayLogContract", "StatsContract"]

HOUR = 3600.0


def _has(alerts: tuple[str, ...], words: str) -> bool:
    return any(words in alert.lower() for alert in alerts)


class StatsContract:
    """``bus.stats()``: counters that reflect the broker, and the alerts over them."""

    async def test_ready_and_consumers_and_the_no_consumer_alert(self, harness: Harness) -> None:
        # Given a declared group with no worker running
        publisher = harness.make_bus(consume=False)
        handled: list[str] = []

        @publisher.subscribe("order.placed", group="inventory")
        async def unused(event: OrderPlaced) -> None:
            return None

        await publisher.start()
        for n in range(3):
            await publisher.publish(OrderPlaced(order_id=f"o-{n}"))
        # Then the events wait, and an alert says nobody consumes them
        stats = await group_stats(publisher, "inventory")
        assert (stats.ready, stats.in_flight, stats.scheduled, stats.dead) == (3, 0, 0, 0)
        assert stats.consumers == 0
        assert _has(stats.alerts, "no consumers"), stats.alerts
        # When two workers start
        workers = []
        for _ in range(2):
            worker = harness.make_bus()

            @worker.subscribe("order.placed", group="inventory")
            async def reserve(event: OrderPlaced) -> None:
                handled.append(event.order_id)

            await worker.start()
            workers.append(worker)

        async def two_consumers_and_empty() -> bool:
            s = await group_stats(publisher, "inventory")
            return s.consumers == 2 and s.ready == 0 and s.in_flight == 0

        await harness.wait_until(two_consumers_and_empty, what="two consumers, empty queue")
        stats = await group_stats(publisher, "inventory")
        assert sorted(handled) == ["o-0", "o-1", "o-2"]
        assert not _has(stats.alerts, "no consumers"), stats.alerts
        # And one worker stopping is seen
        await workers[1].close()

        async def one_consumer() -> bool:
            return (await group_stats(publisher, "inventory")).consumers == 1

        await harness.wait_until(one_consumer, what="one consumer after a close")

    async def test_in_flight_counts_deliveries_being_handled(self, harness: Harness) -> None:
        bus = harness.make_bus()
        release = asyncio.Event()
        started: list[str] = []

        @bus.subscribe("order.placed", group="inventory")
        async def reserve(event: OrderPlaced) -> None:
            started.append(event.order_id)
            await release.wait()

        await bus.start()
        await bus.publish(OrderPlaced(order_id="o-1"))
        await bus.publish(OrderPlaced(order_id="o-2"))

        async def two_in_flight() -> bool:
            return (await group_stats(bus, "inventory")).in_flight == 2 and len(started) >= 2

        try:
            await harness.wait_until(two_in_flight, what="two deliveries in flight")
            stats = await group_stats(bus, "inventory")
            assert (stats.ready, stats.scheduled, stats.consumers) == (0, 0, 1)
            assert sorted(started) == ["o-1", "o-2"]
        finally:
            release.set()
        await harness.settled(bus)
        assert (await group_stats(bus, "inventory")).in_flight == 0

    async def test_scheduled_counts_a_waiting_retry_and_dead_counts_the_dlq(
        self, harness: Harness
    ) -> None:
        bus = harness.make_bus()

        @bus.subscribe("order.placed", group="retrying", retry=FixedDelay(attempts=2, base=HOUR))
        async def flaky(event: OrderPlaced) -> None:
            raise ConnectionError("down for an hour")

        @bus.subscribe("order.placed", group="rejecting")
        async def strict(event: OrderPlaced) -> None:
            raise Permanent("never")

        await bus.start()
        await bus.publish(OrderPlaced(order_id="o-1"))

        async def counted() -> bool:
            retrying = await group_stats(bus, "retrying")
            rejecting = await group_stats(bus, "rejecting")
            return retrying.scheduled == 1 and rejecting.dead == 1

        await harness.wait_until(counted, what="a scheduled retry and a dead letter")
        retrying = await group_stats(bus, "retrying")
        rejecting = await group_stats(bus, "rejecting")
        assert (retrying.ready, retrying.in_flight, retrying.scheduled, retrying.dead) == (
            0,
            0,
            1,
            0,
        )
        assert (rejecting.ready, rejecting.in_flight, rejecting.scheduled, rejecting.dead) == (
            0,
            0,
            0,
            1,
        )
        # The DLQ-growth alert names the group that is dead-lettering
        assert _has(rejecting.alerts, "dead-letter"), rejecting.alerts
        assert not _has(retrying.alerts, "dead-letter"), retrying.alerts


class ReplayLogContract:
    """Capability ``replay_log``: ``bus.replay`` works, or raises `NotSupported`."""

    async def test_replay_redelivers_retained_events_marked_replayed_or_is_not_supported(
        self, harness: Harness
    ) -> None:
        dedupe = CAP_DEDUPE in (await harness.make_transport()).capabilities
        bus = harness.make_bus()
        inventory: list[tuple[str, bool]] = []
        audit: list[str] = []

        # Idempotent where possible: replayed deliveries bypass dedupe.
        @bus.subscribe("order.placed", group="inventory", idempotent=dedupe)
        async def reserve(event: OrderPlaced, ctx: Context) -> None:
            inventory.append((event.order_id, ctx.replayed))

        @bus.subscribe("order.placed", group="audit")
        async def record(event: OrderPlaced) -> None:
            audit.append(event.order_id)

        await bus.start()
        for n in range(3):
            await bus.publish(OrderPlaced(order_id=f"o-{n}"), id=f"evt-{n}")
        await harness.wait_until(lambda: len(inventory) >= 3 and len(audit) >= 3, what="3 x 2")
        await harness.settled(bus)
        if CAP_REPLAY_LOG not in bus.transport.capabilities:
            with pytest.raises(NotSupported):
                await bus.replay("inventory", "1h")
            return
        # When the group is replayed from an hour ago
        assert await bus.replay("inventory", "1h") == 3
        await harness.wait_until(lambda: len(inventory) >= 6, what="three replayed deliveries")
        await harness.settled(bus)
        # Then every retained event came again, marked replayed, to that group only
        assert sorted(inventory[:3]) == [("o-0", False), ("o-1", False), ("o-2", False)]
        assert sorted(inventory[3:]) == [("o-0", True), ("o-1", True), ("o-2", True)]
        assert sorted(audit) == ["o-0", "o-1", "o-2"]
        # And `since` bounds what is replayed (a datetime in the future replays nothing)
        future = datetime.fromtimestamp(harness.now() + HOUR, UTC)
        assert await bus.replay("inventory", future) == 0


class LifecycleContract:
    """A bus opens once and closes once; a closed bus refuses work."""

    async def test_opening_twice_and_using_a_closed_bus_raise_state_error(
        self, harness: Harness
    ) -> None:
        bus = harness.make_bus()

        @bus.subscribe("order.placed", group="inventory")
        async def reserve(event: OrderPlaced) -> None:
            return None

        async with bus:
            with pytest.raises(StateError):
                await bus.start()
            with pytest.raises(StateError):
                bus.subscribe("order.shipped", group="other")
            await bus.publish(OrderPlaced(order_id="o-1"))
        await bus.close()  # idempotent
        await bus.close()
        calls: list[Callable[[], Awaitable[Any]]] = [
            bus.start,
            lambda: bus.publish(OrderPlaced(order_id="o-2")),
            bus.stats,
            lambda: bus.dead_letters("inventory").list(),
        ]
        for call in calls:
            with pytest.raises(StateError):
                await call()
        with pytest.raises(StateError):
            async with bus:
                pass

    async def test_closing_a_bus_leaves_its_events_for_the_next_worker(
        self, harness: Harness
    ) -> None:
        # Given a publisher and a worker that starts after the events were published
        publisher = harness.make_bus(consume=False)
        handled: list[str] = []

        def register(bus: Bus) -> None:
            @bus.subscribe("order.placed", group="inventory")
            async def reserve(event: OrderPlaced) -> None:
                handled.append(event.order_id)

        register(publisher)
        await publisher.start()
        await publisher.publish(OrderPlaced(order_id="o-1"))
        await publisher.close()
        worker = harness.make_bus()
        register(worker)
        await worker.start()
        await harness.wait_until(lambda: handled == ["o-1"], what="the stored event")
        await harness.settled(worker)
        assert handled == ["o-1"]
