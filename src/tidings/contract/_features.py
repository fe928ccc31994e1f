"""Contract: idempotent groups, publishing from a handler, ordered groups."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict

import pytest

from .._core.context import Context
from .._core.retry import Retry
from .._exceptions import ConfigError, Permanent
from ..transports._transport import CAP_DEDUPE
from ._events import OrderPlaced, ParcelShipped, SeqItem, StockReserved
from ._harness import FixedDelay, Harness, group_stats

__all__ = ["ContextPublishContract", "IdempotencyContract", "OrderingContract"]


async def has_dedupe_store(harness: Harness) -> bool:
    """True when `idempotent=True` can work: the transport has its own dedupe store, or the
    harness configures an external one (``bus_options["dedupe"]``)."""
    transport = await harness.make_transport()
    own = CAP_DEDUPE in transport.capabilities or transport.dedupe_store() is not None
    return own or bool(harness.bus_options.get("dedupe"))


class IdempotencyContract:
    """``idempotent=True``: a repeated event id is handled once."""

    async def test_an_event_published_twice_with_one_id_is_handled_once(
        self, harness: Harness
    ) -> None:
        bus = harness.make_bus()
        runs: list[tuple[str, int]] = []

        @bus.subscribe(
            "order.placed",
            group="inventory",
            idempotent=True,
            retry=Retry(attempts=2, base=0.01),
        )
        async def reserve(event: OrderPlaced, ctx: Context) -> None:
            runs.append((event.order_id, ctx.attempt))
            if ctx.attempt == 1:
                raise ConnectionError("a failed attempt is not a processed event")

        if not await has_dedupe_store(harness):
            # A transport without a dedupe store must refuse idempotent groups at start.
            with pytest.raises(ConfigError):
                await bus.start()
            return
        await bus.start()
        # When an event is handled (after one failed attempt) and then published again
        await bus.publish(OrderPlaced(order_id="o-1"), id="dup-1")
        await harness.wait_until(lambda: len(runs) >= 2, what="the first delivery")
        await harness.settled(bus)
        await bus.publish(OrderPlaced(order_id="o-1 again"), id="dup-1")
        await bus.publish(OrderPlaced(order_id="o-2"), id="other-2")
        await harness.wait_until(lambda: len(runs) >= 4, what="the other event")
        await harness.settled(bus)
        # Then the duplicate was dropped; the failed attempt did not count as processed
        assert runs == [("o-1", 1), ("o-1", 2), ("o-2", 1), ("o-2", 2)]


class ContextPublishContract:
    """``ctx.publish``: held until the handler returns, deterministic ids, causation."""

    async def test_messages_are_held_until_the_handler_returns(self, harness: Harness) -> None:
        bus = harness.make_bus()
        during: list[int] = []
        reserved: list[str] = []

        @bus.subscribe("order.placed", group="inventory")
        async def reserve(event: OrderPlaced, ctx: Context) -> None:
            await ctx.publish(StockReserved(order_id=event.order_id))
            # What the broker holds for the warehouse while the handler still runs
            stats = await group_stats(bus, "warehouse")
            waiting = stats.ready + stats.in_flight + stats.scheduled
            during.append(waiting + reserved.count(event.order_id))
            if event.order_id == "fails":
                raise Permanent("out of stock")

        @bus.subscribe("stock.reserved", group="warehouse")
        async def pick(event: StockReserved) -> None:
            reserved.append(event.order_id)

        await bus.start()
        # When a handler publishes through ctx and succeeds
        await bus.publish(OrderPlaced(order_id="works"))
        await harness.wait_until(lambda: reserved == ["works"], what="the published event")
        await harness.settled(bus)
        # And another publishes through ctx, then fails
        await bus.publish(OrderPlaced(order_id="fails"))

        async def dead() -> bool:
            return len(await bus.dead_letters("inventory").list()) >= 1

        await harness.wait_until(dead, what="the failing event to be dead-lettered")
        await harness.settled(bus)
        # Then nothing was sent while the handlers ran, and only the success published
        assert during == [0, 0]
        assert reserved == ["works"]

    async def test_derived_ids_are_deterministic_and_causation_is_recorded(
        self, harness: Harness
    ) -> None:
        # Given order -> stock (two lines, first attempt fails) -> parcel
        bus = harness.make_bus()
        ids_by_attempt: dict[int, list[str]] = {}
        stock: list[tuple[str, Context]] = []
        parcels: list[Context] = []

        @bus.subscribe("order.placed", group="inventory", retry=Retry(attempts=2, base=0.01))
        async def reserve(event: OrderPlaced, ctx: Context) -> None:
            ids = [
                await ctx.publish(StockReserved(order_id=event.order_id, line=1)),
                await ctx.publish(StockReserved(order_id=event.order_id, line=2)),
            ]
            ids_by_attempt[ctx.attempt] = ids
            if ctx.attempt == 1:
                raise ConnectionError("crash after publishing")

        @bus.subscribe("stock.reserved", group="warehouse")
        async def pick(event: StockReserved, ctx: Context) -> None:
            stock.append((ctx.event_id, ctx))
            if event.line == 1:
                await ctx.publish(ParcelShipped(order_id=event.order_id))

        @bus.subscribe("parcel.shipped", group="shipping")
        async def ship(event: ParcelShipped, ctx: Context) -> None:
            parcels.append(ctx)

        await bus.start()
        order_id = await bus.publish(OrderPlaced(order_id="o-1"))
        await harness.wait_until(lambda: len(parcels) >= 1 and len(stock) >= 2, what="chain")
        await harness.settled(bus)
        # Then the retry derived the same ids, one per position, each delivered once
        assert sorted(ids_by_attempt) == [1, 2]
        assert ids_by_attempt[1] == ids_by_attempt[2]
        first, second = ids_by_attempt[2]
        assert first != second and order_id not in (first, second)
        assert Counter(event_id for event_id, _ in stock) == Counter({first: 1, second: 1})
        # And correlation / causation follow the chain
        for _, ctx in stock:
            assert ctx.envelope.correlationid == order_id
            assert ctx.envelope.causationid == order_id
        (parcel,) = parcels
        assert parcel.envelope.correlationid == order_id
        assert parcel.envelope.causationid == first


class OrderingContract:
    """``ordered=True``: per-key publish order, a retry holds back only its own key."""

    async def test_events_of_a_key_are_handled_one_at_a_time_in_publish_order(
        self, harness: Harness
    ) -> None:
        bus = harness.make_bus()
        seen: dict[str, list[int]] = defaultdict(list)
        active: Counter[str] = Counter()
        overlaps: list[str] = []
        rng = random.Random(7)

        @bus.subscribe("seq.item", group="ledger", ordered=True, concurrency=16)
        async def book(event: SeqItem, ctx: Context) -> None:
            active[event.key] += 1
            if active[event.key] > 1:
                overlaps.append(event.key)
            await asyncio.sleep(rng.uniform(0, 0.003))  # shuffle completion order
            seen[event.key].append(event.n)
            active[event.key] -= 1

        await bus.start()
        keys = [f"acct-{k}" for k in range(4)]
        for n in range(8):
            for key in keys:
                await bus.publish(SeqItem(key=key, n=n), key=key)
        await harness.wait_until(
            lambda: sum(len(v) for v in seen.values()) >= 32, what="32 deliveries"
        )
        await harness.settled(bus)
        assert overlaps == []
        assert dict(seen) == {key: list(range(8)) for key in keys}

    async def test_a_retrying_event_holds_back_only_its_own_key(self, harness: Harness) -> None:
        bus = harness.make_bus()
        log: list[tuple[str, int, int]] = []

        @bus.subscribe(
            "seq.item",
            group="ledger",
            ordered=True,
            concurrency=16,
            retry=FixedDelay(attempts=3, base=1.5),
        )
        async def book(event: SeqItem, ctx: Context) -> None:
            log.append((event.key, event.n, ctx.attempt))
            if event.key == "a" and event.n == 0 and ctx.attempt == 1:
                raise ConnectionError("first try fails")

        await bus.start()
        for n in range(3):
            await bus.publish(SeqItem(key="a", n=n), key="a")
        for n in range(3):
            await bus.publish(SeqItem(key="b", n=n), key="b")

        async def b_done_and_a_waiting() -> bool:
            b_done = sum(1 for k, _, _ in log if k == "b") >= 3
            return b_done and (await group_stats(bus, "ledger")).scheduled == 1

        # When a0 fails and waits for its retry
        await harness.wait_until(b_done_and_a_waiting, what="key b while a0 waits")
        # Then key b went on while key a is held back behind a0
        assert [(k, n) for k, n, _ in log if k == "a"] == [("a", 0)]
        assert [n for k, n, _ in log if k == "b"] == [0, 1, 2]
        # And after the retry, key a resumes in order
        await harness.wait_until(lambda: len(log) >= 7, what="key a to resume")
        await harness.settled(bus)
        assert [(n, attempt) for k, n, attempt in log if k == "a"] == [
            (0, 1),
            (0, 2),
            (1, 1),
            (2, 1),
        ]
