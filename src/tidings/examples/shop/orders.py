"""The orders service: the API that places orders, and the record of how each ended.

`place_order` is what the web handler calls: it records the order and publishes
``order.placed`` in one transaction of the shop's database (the outbox), so an order exists
exactly when its event leaves; the bus's relay sends the event once the transaction has
committed. The ``orders`` group records each order's outcome.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings import Bus, Context

from ..plan import Settings
from .db import SKUS, ensure_tables, orders
from .events import OrderCancelled, OrderCompleted, OrderPlaced

__all__ = ["GROUP", "attach", "make_order", "place_order"]

GROUP = "orders"


def make_order(number: int, seed: int) -> OrderPlaced:
    """The `number`-th order of a run: ids ``o-00001``..., a customer, a total, an item."""
    customer = f"c-{(number * 7 + seed) % 40 + 1:03d}"
    total = Decimal(500 + (number * 7919 + seed) % 24_500) / 100
    sku = SKUS[(number * 31 + seed) % len(SKUS)]
    return OrderPlaced(
        order_id=f"o-{number:05d}",
        customer=customer,
        total=total,
        currency="EUR",
        sku=sku,
        quantity=1 + (number + seed) % 3,
    )


async def place_order(bus: Bus, order: OrderPlaced) -> str:
    """Record `order` and publish it, keyed by its id, in one transaction of the bus's
    database; return the event id."""
    async with AsyncSession(bus.database) as session, session.begin():
        await ensure_tables(session)
        await session.execute(
            orders.insert().values(
                order_id=order.order_id,
                customer=order.customer,
                total=order.total,
                sku=order.sku,
                quantity=order.quantity,
            )
        )
        return await bus.publish(order, key=order.order_id, session=session)


def attach(bus: Bus, settings: Settings) -> None:
    """Subscribe the orders service's handlers to `bus`."""

    @bus.subscribe("order.completed", group=GROUP, transactional=True)
    async def completed(event: OrderCompleted, ctx: Context) -> None:
        await _outcome(ctx, event.order_id, "completed")

    @bus.subscribe("order.cancelled", group=GROUP, transactional=True)
    async def cancelled(event: OrderCancelled, ctx: Context) -> None:
        await _outcome(ctx, event.order_id, "cancelled")


async def _outcome(ctx: Context, order_id: str, outcome: str) -> None:
    await ensure_tables(ctx.session)
    await ctx.session.execute(
        update(orders).where(orders.c.order_id == order_id).values(outcome=outcome)
    )
