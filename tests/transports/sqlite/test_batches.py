"""All-or-nothing publish calls on the embedded broker: with ``on_unroutable="error"`` a call
holding an unroutable message stores none of its messages; with ``"ignore"`` the routable
ones are stored. An unroutable message is never written to the retained log."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidings import Bus, Event, Unroutable
from tidings.transports import CAP_ATOMIC_BATCH, GroupSpec

from .conftest import OpenTransport, message

ORDERS = GroupSpec("orders", ("order.*",))


async def _ready(transport) -> int:  # type: ignore[no-untyped-def]
    return sum(s.ready for s in await transport.stats())


async def test_a_call_holding_an_unroutable_message_stores_none_of_it(
    open_transport: OpenTransport,
) -> None:
    transport = await open_transport(on_unroutable="error")
    assert CAP_ATOMIC_BATCH in transport.capabilities
    await transport.declare([ORDERS])

    # When a call holds a routable and an unroutable message
    flags = await transport.publish([message("order.placed"), message("nobody.listens")])

    # Then the flags say which was routable, and nothing of the call was stored
    assert flags == [True, False]
    assert await _ready(transport) == 0
    assert await transport.replay("orders", 0.0) == 0


async def test_with_ignore_the_routable_messages_go_and_the_others_are_not_kept(
    open_transport: OpenTransport,
) -> None:
    transport = await open_transport(on_unroutable="ignore")
    await transport.declare([ORDERS])

    # When a call holds a routable and an unroutable message
    flags = await transport.publish([message("order.placed"), message("audit.noted")])

    # Then the routable one was stored
    assert flags == [True, False]
    assert await _ready(transport) == 1

    # And the unroutable one is not in the retained log: a group that subscribes to it
    # later cannot replay it
    audit = GroupSpec("audit", ("audit.*",))
    await transport.declare([audit])
    assert await transport.replay("audit", 0.0) == 0
    assert await transport.replay("orders", 0.0) == 1


@pytest.mark.parametrize("policy", ["error", "ignore"])
async def test_an_unroutable_publish_is_never_kept_in_the_retained_log(
    open_transport: OpenTransport, policy: str
) -> None:
    transport = await open_transport(on_unroutable=policy)
    assert await transport.publish([message("audit.noted")]) == [False]
    assert await transport.publish([message("audit.noted", group="nobody")]) == [False]
    await transport.declare([GroupSpec("audit", ("audit.*",))])
    assert await transport.replay("audit", 0.0) == 0


class OrderPlaced(Event, type="order.placed"):
    order_id: str


class Noted(Event, type="audit.noted"):
    text: str


async def test_publish_many_with_an_unroutable_event_sends_nothing(tmp_path: Path) -> None:
    # Given a bus whose only group takes orders
    bus = Bus(f"sqlite:///{tmp_path / 'bus.db'}", consume=False)

    @bus.subscribe("order.placed", group="orders")
    async def take(event: OrderPlaced) -> None:
        pass

    async with bus:
        # When a batch holds an order and an event nobody takes
        with pytest.raises(Unroutable) as info:
            await bus.publish_many([OrderPlaced(order_id="o-1"), Noted(text="hi")])

        # Then none of it went out, and the error says so
        assert info.value.sent_ids == []
        assert len(info.value.unroutable_ids) == 1
        [stats] = await bus.stats()
        assert stats.ready == 0
