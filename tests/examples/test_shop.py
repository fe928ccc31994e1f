"""The shop: the checkout saga takes every order to completed or compensated, exactly as the
seeded plan says, and the shop's tables hold the invariants."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.support import eventually
from tidings import Event
from tidings.examples.plan import Settings
from tidings.examples.shop import create_bus, db, expected_outcome
from tidings.examples.shop.events import StockReleased
from tidings.examples.shop.orders import make_order, place_order
from tidings.testing import TestBus

from .conftest import SETTLE, Handled, idle, keys_seen

GROUPS = ("checkout", "inventory", "payment", "shipping", "orders", "notification")
SEED = 11


def planned(share: float, seed: int, what: str, order_id: str) -> bool:
    """A seeded decision restated from its definition (SHA-256), so the test does not trust
    the code it checks."""
    digest = hashlib.sha256(f"{seed}\x00{what}\x00{order_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def plan_declines(seed: int, order_id: str) -> bool:
    return planned(0.10, seed, "payment.declined", order_id)


def plan_loses_answer(seed: int, order_id: str) -> bool:
    return not plan_declines(seed, order_id) and planned(0.05, seed, "payment.lost", order_id)


async def test_every_order_is_completed_or_compensated(
    url: str, bus_options: dict[str, Any], tmp_path: Path
) -> None:
    # Given the shop's services on one bus with their database, and an auditor of order.*
    count, settings = 60, Settings(seed=SEED, time_scale=0.01)
    handled = Handled()
    database = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    bus = create_bus(url, settings, middleware=[handled], database=database, **bus_options)
    seen: dict[str, set[str]] = {}
    bus.subscribe("order.*", group="audit")(keys_seen(seen, "order_id"))

    async with bus:
        await db.reset(bus.database, bus.name)
        # When the orders API places `count` orders
        for n in range(1, count + 1):
            await place_order(bus, make_order(n, SEED))

        def ended() -> bool:
            done = seen.get("order.completed", set()) | seen.get("order.cancelled", set())
            return len(done) == count

        await eventually(ended, SETTLE, what="every order completed or cancelled")
        await eventually(lambda: idle(bus, (*GROUPS, "audit")), SETTLE, what="idle groups")
        dead = [e for g in GROUPS for e in await bus.dead_letters(g).list()]
        audit = await db.audit(bus.database, bus.name)

    # Then the declined cards and the lost payment answers (only those) were compensated
    ids = {f"o-{n:05d}" for n in range(1, count + 1)}
    declined = {i for i in ids if plan_declines(SEED, i)}
    lost = {i for i in ids if plan_loses_answer(SEED, i)}
    assert declined and lost and len(declined | lost) < count
    assert seen["order.placed"] == ids
    assert seen["order.cancelled"] == declined | lost
    assert seen["order.completed"] == ids - declined - lost
    assert expected_outcome(SEED, count) == {
        "orders": count,
        "completed": count - len(declined | lost),
        "compensated": len(declined | lost),
    }
    # and the shop's tables agree and hold every invariant
    assert audit.counts == expected_outcome(SEED, count)
    assert audit.invariants and all(audit.invariants.values()), audit.invariants
    # nothing was lost or dead-lettered; every customer was told, once per order
    assert dead == []
    assert handled.count("notification") == count
    assert handled.count("shipping") == count - len(declined | lost)
    # the gateway timeouts were retried; payment handled each charge once, each refund once
    assert handled.failed.get("payment")
    assert handled.count("payment") == count + len(lost)


async def test_a_lost_payment_answer_is_compensated_in_reverse_order(tmp_path: Path) -> None:
    # Given the shop on the test bus, and an order whose payment answer the plan loses
    bus = create_bus("memory://", Settings(seed=SEED, time_scale=0.0))
    order = next(
        make_order(n, SEED) for n in range(1, 400) if plan_loses_answer(SEED, f"o-{n:05d}")
    )

    async with TestBus(bus, database=f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}") as tb:
        # When it is placed and every scheduled message has come due (the payment timeout)
        await place_order(bus, order)
        await tb.drain(retries=True)
        # and a copy of the last undo's answer arrives again
        await bus.publish(
            StockReleased(order_id=order.order_id, reason="again"), key=order.order_id
        )
        await tb.drain(retries=True)
        audit = await db.audit(bus.database, bus.name)

    # Then checkout charged, timed out, refunded, then released the stock: reverse order
    types = [t for t in tb.published_types() if t != "order.placed"]
    assert types[:4] == ["inventory.reserve", "stock.reserved", "payment.charge",
                         "checkout.payment_timeout"]  # fmt: skip
    assert types[4:] == [
        "payment.refund", "payment.refunded", "inventory.release", "stock.released",
        "order.cancelled", "stock.released",
    ]  # fmt: skip
    # the outcome was published once, every message keyed by the order id
    assert types.count("order.cancelled") == 1
    assert {p.key for p in tb.published} == {order.order_id}
    assert audit.counts == {"orders": 1, "completed": 0, "compensated": 1}
    assert all(audit.invariants.values()), audit.invariants
    assert tb.dead_lettered == []


class OrderPlacedV1(Event, type="order.placed", version=1):
    """The shop's order event as a producer not yet upgraded still publishes it."""

    order_id: str
    customer: str
    total: Decimal
    sku: str = "sku-1"
    quantity: int = 1


async def test_a_version_1_order_is_upcast_and_checked_out(tmp_path: Path) -> None:
    # Given the shop, whose order.placed is at version 2 (it added a currency)
    bus = create_bus("memory://", Settings(seed=SEED, time_scale=0.0))
    order = make_order(1, SEED)
    old = OrderPlacedV1(**order.model_dump(exclude={"currency"}))

    async with TestBus(bus, database=f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}") as tb:
        # When an old producer places a version 1 order
        await place_order(bus, old)  # type: ignore[arg-type]
        await tb.drain(retries=True)
        audit = await db.audit(bus.database, bus.name)

    # Then it went out as version 1, was upcast on the way in, and checked out like any order
    [placed] = [p for p in tb.published if p.type == "order.placed"]
    assert placed.envelope.dataversion == 1 and "currency" not in placed.data
    assert tb.dead_lettered == []
    assert audit.counts["orders"] == 1
    assert audit.counts["completed"] + audit.counts["compensated"] == 1
    assert all(audit.invariants.values()), audit.invariants
