"""All-or-nothing publish calls on the memory transport (`CAP_ATOMIC_BATCH`): with
unroutable messages an error, a call holding one stores none of it; an unroutable message is
never retained, whatever the setting; `TestBus` hands the bus's setting to its transport."""

from __future__ import annotations

from tidings import Bus, Event
from tidings.testing import TestBus
from tidings.transports import CAP_ATOMIC_BATCH, GroupSpec, OutgoingMessage, Transport

from .conftest import MakeTransport

ORDERS = GroupSpec("orders", ("order.*",))
EVERYTHING = GroupSpec("everything", ("#",))


def message(n: int, type_: str = "order.placed", group: str | None = None) -> OutgoingMessage:
    return OutgoingMessage(f"m-{n}", type_, b"{}", "application/json", group=group)


async def stored(t: Transport) -> int:
    (stats,) = await t.stats()
    return stats.ready


async def test_a_call_holding_an_unroutable_message_stores_none_of_it(
    memory: MakeTransport,
) -> None:
    t = await memory()  # on_unroutable="error", the bus's default
    assert CAP_ATOMIC_BATCH in t.capabilities
    await t.declare([ORDERS])
    # When a call holds an event nobody subscribes to, or a command to a missing group
    for odd in (message(2, "nobody.listens"), message(2, group="missing")):
        routed = await t.publish([message(1), odd, message(3)])
        # Then the flags say which were routable, and nothing was stored
        assert routed == [True, False, True]
        assert await stored(t) == 0
    # Nor retained: a group that matches everything, declared later, replays nothing
    await t.declare([EVERYTHING])
    assert await t.replay("everything", 0.0) == 0


async def test_with_unroutable_ignored_the_routable_ones_go_and_only_they_are_retained(
    memory: MakeTransport,
) -> None:
    t = await memory(on_unroutable="ignore")
    await t.declare([ORDERS])
    assert await t.publish([message(1), message(2, "nobody.listens")]) == [True, False]
    assert await stored(t) == 1
    await t.declare([EVERYTHING])
    assert await t.replay("everything", 0.0) == 1


class Placed(Event, type="order.placed"):
    order_id: str


class Noted(Event, type="audit.noted"):
    line: str


async def test_a_test_bus_that_ignores_unroutable_events_delivers_the_rest_of_a_batch() -> None:
    bus = Bus("memory://unused", on_unroutable="ignore")
    got: list[str] = []

    @bus.subscribe("order.placed", group="inventory")
    async def reserve(event: Placed) -> None:
        got.append(event.order_id)

    async with TestBus(bus) as tb:
        await bus.publish_many([Placed(order_id="o-1"), Noted(line="a"), Placed(order_id="o-2")])
        await tb.drain()
    assert sorted(got) == ["o-1", "o-2"]
