"""Upcasters on the way in: a v1 producer in another process and a v2 consumer, a newer
event dead-lettered, dead-letter and retained-log replays upcast, the rules of a chain."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.support import Children, eventually
from tidings import Bus, ConfigError, Context, Event, Permanent
from tidings.schemas import registry, upcaster
from tidings.testing import TestBus

PRODUCER = Path(__file__).with_name("producer.py")


class OrderPlaced(Event, type="order.placed", version=2):
    order_id: str
    amount: Decimal
    currency: str


def register_v1_to_v2() -> None:
    @upcaster("order.placed", from_version=1)
    def rename_total(data: dict[str, Any]) -> dict[str, Any]:
        data = dict(data)
        data["amount"] = data.pop("total")
        return {**data, "currency": "EUR"}


def produce(children: Children, url: str, version: int, *order_ids: str) -> None:
    children.start("python", str(PRODUCER), url, str(version), *order_ids).expect_exit(0)


async def test_v1_from_another_process_reaches_a_v2_handler_upcast(
    tmp_path: Path, children: Children
) -> None:
    # Given a consumer of version 2 with an upcaster from version 1
    register_v1_to_v2()
    url = f"sqlite:///{tmp_path / 'broker.db'}"
    bus = Bus(url)
    seen: list[tuple[str, Decimal, str, int | None, bool]] = []
    failing = {"o-dlq"}

    @bus.subscribe("order.placed", group="billing")
    async def bill(order: OrderPlaced, ctx: Context) -> None:
        if order.order_id in failing:
            raise Permanent("card declined")
        seen.append(
            (
                order.order_id,
                order.amount,
                order.currency,
                ctx.envelope.dataversion,
                ctx.replayed,
            )
        )

    async with bus:
        # When a v1 producer in another process publishes, and a v3 one too
        await asyncio.to_thread(produce, children, url, 1, "o-1", "o-dlq")
        await asyncio.to_thread(produce, children, url, 3, "o-3")
        dead = bus.dead_letters("billing")
        await eventually(lambda: len(seen) == 1, timeout=20)
        entries = await eventually_entries(dead, 2)

        # Then the v1 event arrives as version 2, and the v3 one is dead-lettered
        assert seen == [("o-1", Decimal("9.90"), "EUR", 1, False)]
        by_order = {e.data["order_id"]: e for e in entries}
        newer = by_order["o-3"].reason
        assert "version 3" in newer and "version 2" in newer, newer
        assert "card declined" in by_order["o-dlq"].reason
        assert by_order["o-dlq"].data == {"order_id": "o-dlq", "total": "9.90"}

        # When the failing one is replayed from the dead-letter queue
        failing.clear()
        assert await dead.replay([by_order["o-dlq"].entry_id]) == 1
        await eventually(lambda: len(seen) == 2, timeout=20)
        # Then it is upcast on its way in again
        assert seen[1] == ("o-dlq", Decimal("9.90"), "EUR", 1, False)

        # When the retained log is replayed
        seen.clear()
        assert await bus.replay("billing", "1h") == 3
        await eventually(lambda: len(seen) == 2, timeout=20)
        # Then the v1 events are upcast, and the v3 one is dead-lettered again
        assert sorted(seen) == [
            ("o-1", Decimal("9.90"), "EUR", 1, True),
            ("o-dlq", Decimal("9.90"), "EUR", 1, True),
        ]
        entries = await eventually_entries(dead, 2)
        assert {e.data["order_id"] for e in entries} == {"o-3"}


async def eventually_entries(dead: Any, count: int) -> list[Any]:
    found: list[Any] = []

    async def enough() -> bool:
        found[:] = await dead.list()
        return len(found) == count

    await eventually(enough, timeout=20, what=f"{count} dead letters")
    return found


class V3(Event, type="order.placed", version=3):
    order_id: str
    amount: Decimal
    currency: str
    channel: str


class V1(Event, type="order.placed", version=1):
    order_id: str
    total: Decimal


def a_bus(model: type[Any], received: list[Any]) -> Bus:
    bus = Bus("memory://")

    async def handle(event: Any) -> None:
        received.append(event)

    handle.__annotations__["event"] = model
    bus.subscribe("order.placed", group="g")(handle)
    return bus


async def test_a_chain_applies_in_order() -> None:
    # Given upcasters 1 -> 2 -> 3
    register_v1_to_v2()

    @upcaster("order.placed", from_version=2)
    def add_channel(data: dict[str, Any]) -> dict[str, Any]:
        assert "amount" in data and "total" not in data  # the step before ran first
        return {**data, "channel": "unknown"}

    received: list[V3] = []
    bus = a_bus(V3, received)
    async with TestBus(bus) as tb:
        # When a v1 and a v2 event arrive
        await bus.publish(V1(order_id="o-1", total=Decimal("1")))
        await bus.publish(OrderPlaced(order_id="o-2", amount=Decimal("2"), currency="GBP"))
        await tb.drain()
    # Then both reach the v3 handler through the steps they need
    assert [(e.order_id, e.amount, e.currency, e.channel) for e in received] == [
        ("o-1", Decimal("1"), "EUR", "unknown"),
        ("o-2", Decimal("2"), "GBP", "unknown"),
    ]


async def test_a_gap_in_a_chain_stops_the_bus_from_starting() -> None:
    # Given a v3 handler and an upcaster from version 2 only
    @upcaster("order.placed", from_version=2)
    def add_channel(data: dict[str, Any]) -> dict[str, Any]:
        return data

    bus = a_bus(V3, [])
    # When the bus starts, Then it names the type and the missing step
    with pytest.raises(ConfigError, match=r"'order.placed'.*no upcaster for 1 -> 2"):
        async with TestBus(bus):
            pass


async def test_without_upcasters_old_data_is_validated_as_it_is() -> None:
    # Given a v2 model that only added a field with a default, and no upcaster
    class Placed(Event, type="order.placed", version=2):
        order_id: str
        total: Decimal
        note: str = ""

    received: list[Any] = []
    bus = a_bus(Placed, received)
    async with TestBus(bus) as tb:
        await bus.publish(V1(order_id="o-1", total=Decimal("1")))
        await tb.drain()
    assert [(e.order_id, e.note) for e in received] == [("o-1", "")]
    assert tb.dead_lettered == []


async def test_a_failing_upcaster_dead_letters_with_its_error() -> None:
    @upcaster("order.placed", from_version=1)
    def broken(data: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("currency")

    bus = a_bus(OrderPlaced, [])
    async with TestBus(bus) as tb:
        await bus.publish(V1(order_id="o-1", total=Decimal("1")))
        await tb.drain()
    [entry] = tb.dead_lettered
    assert "broken" in entry.reason and "from version 1" in entry.reason
    assert "KeyError" in entry.reason


async def test_handlers_taking_dict_are_not_upcast() -> None:
    register_v1_to_v2()
    received: list[Any] = []
    bus = Bus("memory://")

    @bus.subscribe("order.placed", group="raw")
    async def raw(event: dict[str, Any]) -> None:
        received.append(event)

    async with TestBus(bus) as tb:
        await bus.publish(V3(order_id="o", amount=Decimal("1"), currency="X", channel="c"))
        await bus.publish(V1(order_id="o", total=Decimal("1")))
        await tb.drain()
    assert received == [
        {"order_id": "o", "amount": "1", "currency": "X", "channel": "c"},
        {"order_id": "o", "total": "1"},
    ]


def test_the_registry_refuses_two_upcasters_for_one_step() -> None:
    register_v1_to_v2()
    with pytest.raises(ConfigError, match="two upcasters"):
        registry.register("order.placed", 1, lambda d: d)
    with pytest.raises(ConfigError, match="positive integer"):
        upcaster("order.placed", from_version=0)(lambda d: d)
    assert registry.steps("order.placed") == [1]
    registry.clear()
    assert len(registry) == 0
