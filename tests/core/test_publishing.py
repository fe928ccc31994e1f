"""Publishing: `Unroutable` says which ids went out and which reached no group, for a single
publish and for a batch with and without publish middleware: on a transport that refuses a
call whole (`CAP_ATOMIC_BATCH`, the memory transport) and on one that cannot."""

from __future__ import annotations

from typing import Any

import pytest

from tidings import Bus, Event, Middleware, Unroutable
from tidings.testing import TestBus
from tidings.transports import CAP_ATOMIC_BATCH, TransportOptions
from tidings.transports.memory import MemoryBroker, MemoryTransport


class OrderPlaced(Event, type="order.placed"):
    order_id: str


class Audited(Event, type="audit.noted"):
    line: str


class PassThrough(Middleware):
    async def publish(self, message, call_next):  # type: ignore[no-untyped-def]
        return await call_next(message)


class NotAtomic(MemoryTransport):
    """A memory transport standing in for a broker that cannot refuse a batch (RabbitMQ)."""

    capabilities = MemoryTransport.capabilities - {CAP_ATOMIC_BATCH}


def shop(middleware: list[object], **options: Any) -> Bus:
    bus = Bus("memory://unused", middleware=middleware, **options)

    @bus.subscribe("order.placed", group="inventory")
    async def reserve(event: OrderPlaced) -> None:
        return None

    return bus


HOOKS = pytest.mark.parametrize("middleware", [[], [PassThrough()]], ids=["plain", "with-hooks"])


@HOOKS
async def test_an_atomic_transport_stores_none_of_a_batch_and_names_what_did_not_route(
    middleware: list[object],
) -> None:
    bus = shop(middleware, consume=False)  # what is stored stays
    async with TestBus(bus) as tb:
        with pytest.raises(Unroutable) as caught:
            await bus.publish_many(
                [OrderPlaced(order_id="o-1"), Audited(line="a"), OrderPlaced(order_id="o-2")]
            )
        (stats,) = await bus.stats()
    error = caught.value
    assert error.sent_ids == []
    assert error.unroutable_ids == [p.id for p in tb.published if p.type == "audit.noted"]
    assert "audit.noted" in str(error)
    assert (stats.group, stats.ready) == ("inventory", 0)


@HOOKS
async def test_elsewhere_a_batch_names_what_went_out_and_what_did_not(
    middleware: list[object],
) -> None:
    broker = MemoryBroker()
    transport = NotAtomic("memory://unused", TransportOptions(), broker=broker)
    bus = shop(middleware, transport=transport, consume=False)  # what is stored stays
    async with bus:
        with pytest.raises(Unroutable) as caught:
            await bus.publish_many(
                [OrderPlaced(order_id="o-1"), Audited(line="a"), OrderPlaced(order_id="o-2")]
            )
        stored = [e.message for e in broker.queues["inventory"].entries]
    error = caught.value
    assert error.sent_ids == [m.id for m in stored]
    assert len(error.sent_ids) == 2
    assert len(error.unroutable_ids) == 1
    assert error.unroutable_ids[0] not in error.sent_ids
    assert "audit.noted" in str(error)


async def test_a_single_publish_names_its_id() -> None:
    bus = shop([])
    async with TestBus(bus):
        with pytest.raises(Unroutable) as caught:
            await bus.publish(Audited(line="a"), id="evt-audit-1")
    assert (caught.value.sent_ids, caught.value.unroutable_ids) == ([], ["evt-audit-1"])
