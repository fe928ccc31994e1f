"""`tidings.testing.TestBus`: the real pipeline, a clock that only moves when told."""

from __future__ import annotations

from tidings import Bus, Context, Event, Permanent, Retry
from tidings.testing import TestBus


class OrderPlaced(Event, type="order.placed"):
    order_id: str


class StockReserved(Event, type="stock.reserved"):
    order_id: str


def make_bus() -> tuple[Bus, list[tuple[str, int]]]:
    bus = Bus("memory://unused", source="tidings://test/shop")
    runs: list[tuple[str, int]] = []

    @bus.subscribe("order.placed", group="inventory", retry=Retry(attempts=3, base=10.0))
    async def reserve(event: OrderPlaced, ctx: Context) -> None:
        runs.append((event.order_id, ctx.attempt))
        if event.order_id == "flaky" and ctx.attempt < 3:
            raise RuntimeError("warehouse busy")
        if event.order_id == "bad":
            raise Permanent("no such warehouse")
        await ctx.publish(StockReserved(order_id=event.order_id))

    @bus.subscribe("stock.reserved", group="shipping")
    async def ship(event: StockReserved) -> None:
        runs.append((f"ship:{event.order_id}", 1))

    return bus, runs


async def test_retries_wait_for_the_clock_not_for_real_time() -> None:
    bus, runs = make_bus()
    async with TestBus(bus) as tb:
        await bus.publish(OrderPlaced(order_id="flaky"))
        await tb.drain()
        # Given back-off of up to 10 s, the retry is scheduled, not run, until time moves.
        assert runs == [("flaky", 1)]
        stats = {s.group: s for s in await bus.stats()}
        assert stats["inventory"].scheduled == 1
        tb.clock.advance(10.0)
        await tb.drain()
        assert runs == [("flaky", 1), ("flaky", 2)]
        await tb.drain(retries=True)
        assert runs == [("flaky", 1), ("flaky", 2), ("flaky", 3), ("ship:flaky", 1)]
        assert tb.published_types() == ["order.placed", "stock.reserved"]
        reserved = tb.published[1]
        assert reserved.envelope is not None
        assert reserved.envelope.causationid == tb.published[0].id
        assert reserved.data == {"order_id": "flaky"}


async def test_dead_letters_are_listed_and_nothing_is_published_by_a_failed_handler() -> None:
    bus, runs = make_bus()
    async with TestBus(bus) as tb:
        await bus.publish(OrderPlaced(order_id="bad"))
        await tb.drain(retries=True)
        assert runs == [("bad", 1)]
        assert tb.published_types() == ["order.placed"]
        [dead] = tb.dead_lettered
        assert dead.group == "inventory" and dead.attempts == 1
        assert dead.reason == "permanent failure: Permanent: no such warehouse"
        assert dead.data == {"order_id": "bad"}
