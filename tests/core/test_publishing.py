"""Publishing: `Unroutable` says which ids went out and which reached no group, for a single
publish and for a batch with and without publish middleware (memory transport, which cannot
refuse a batch whole)."""

from __future__ import annotations

import pytest

from tidings import Bus, Event, Middleware, Unroutable
from tidings.testing import TestBus


class OrderPlaced(Event, type="order.placed"):
    order_id: str


class Audited(Event, type="audit.noted"):
    line: str


class PassThrough(Middleware):
    async def publish(self, message, call_next):  # type: ignore[no-untyped-def]
        return await call_next(message)


def shop(middleware: list[object]) -> Bus:
    bus = Bus("memory://unused", middleware=middleware)

    @bus.subscribe("order.placed", group="inventory")
    async def reserve(event: OrderPlaced) -> None:
        return None

    return bus


@pytest.mark.parametrize("middleware", [[], [PassThrough()]], ids=["plain", "with-hooks"])
async def test_a_batch_names_what_went_out_and_what_did_not(middleware: list[object]) -> None:
    bus = shop(middleware)
    async with TestBus(bus) as tb:
        with pytest.raises(Unroutable) as caught:
            await bus.publish_many(
                [OrderPlaced(order_id="o-1"), Audited(line="a"), OrderPlaced(order_id="o-2")]
            )
        published = {p.type: [] for p in tb.published}
        for p in tb.published:
            published[p.type].append(p.id)
    error = caught.value
    assert error.sent_ids == published["order.placed"]
    assert len(error.sent_ids) == 2
    assert error.unroutable_ids == published["audit.noted"]
    assert "audit.noted" in str(error)


async def test_a_single_publish_names_its_id() -> None:
    bus = shop([])
    async with TestBus(bus):
        with pytest.raises(Unroutable) as caught:
            await bus.publish(Audited(line="a"), id="evt-audit-1")
    assert (caught.value.sent_ids, caught.value.unroutable_ids) == ([], ["evt-audit-1"])
