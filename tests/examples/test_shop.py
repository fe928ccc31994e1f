"""The shop: every order ends completed or compensated, exactly as the seeded plan says."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

from tests.support import eventually
from tidings.examples.plan import Settings
from tidings.examples.shop import create_bus, expected_outcome
from tidings.examples.shop.events import OrderPlaced
from tidings.examples.shop.orders import make_order, place_order
from tidings.testing import TestBus

from .conftest import SETTLE, Handled, idle, keys_seen

GROUPS = ("inventory", "payment", "shipping", "orders", "notification")
SEED = 11


def plan_declines(seed: int, order_id: str) -> bool:
    """The decline rule, restated here from its definition (10 % by SHA-256), so the test
    does not trust the code it checks."""
    digest = hashlib.sha256(f"{seed}\x00payment.declined\x00{order_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < 0.10


async def test_every_order_is_completed_or_compensated(
    url: str, bus_options: dict[str, Any]
) -> None:
    # Given the shop's five services on one bus, and an auditor of order.* events
    count, settings = 120, Settings(seed=SEED, time_scale=0.01)
    handled = Handled()
    bus = create_bus(url, settings, middleware=[handled], **bus_options)
    seen: dict[str, set[str]] = {}
    bus.subscribe("order.*", group="audit")(keys_seen(seen, "order_id"))

    async with bus:
        # When the orders API places `count` orders
        for n in range(1, count + 1):
            await place_order(bus, make_order(n, SEED))

        def ended() -> bool:
            done = seen.get("order.completed", set()) | seen.get("order.cancelled", set())
            return len(done) == count

        await eventually(ended, SETTLE, what="every order completed or cancelled")
        await eventually(lambda: idle(bus, (*GROUPS, "audit")), SETTLE, what="idle groups")
        dead = [e for g in GROUPS for e in await bus.dead_letters(g).list()]

    # Then the declined orders (and only those) were compensated, the rest completed
    ids = {f"o-{n:05d}" for n in range(1, count + 1)}
    declined = {i for i in ids if plan_declines(SEED, i)}
    assert 0 < len(declined) < count
    assert seen["order.placed"] == ids
    assert seen["order.cancelled"] == declined
    assert seen["order.completed"] == ids - declined
    assert expected_outcome(SEED, count) == {
        "orders": count,
        "completed": count - len(declined),
        "compensated": len(declined),
    }
    # and nothing was lost or dead-lettered; every customer was told, once per order
    assert dead == []
    assert handled.count("notification") == count
    assert handled.count("shipping") == count - len(declined)
    # the gateway timeouts were retried: payment failed some first attempts, charged each once
    assert handled.failed.get("payment")
    assert handled.count("payment") == count


async def test_a_declined_card_is_compensated_in_order() -> None:
    # Given the shop on the test bus, and an order whose card the plan declines
    bus = create_bus("memory://", Settings(seed=SEED, time_scale=0.0))
    order = next(make_order(n, SEED) for n in range(1, 100) if plan_declines(SEED, f"o-{n:05d}"))
    assert isinstance(order, OrderPlaced) and order.total > Decimal(0)

    async with TestBus(bus) as tb:
        # When it is placed, and every retry has run
        await place_order(bus, order)
        await tb.drain(retries=True)

    # Then the compensation ran step by step, all keyed by the order id
    types = [t for t in tb.published_types() if t != "order.placed"]
    assert types == ["stock.reserved", "payment.declined", "stock.released", "order.cancelled"]
    assert {p.key for p in tb.published} == {order.order_id}
    assert tb.dead_lettered == []
