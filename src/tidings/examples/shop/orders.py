"""The orders service: the API that places orders, and the owner of an order's state.

`place_order` is what the web handler calls: it publishes ``order.placed`` and returns
as soon as the broker made it durable. The ``orders`` group closes each order: a scheduled
shipment completes it, released stock (the end of the compensation) cancels it.
"""

from __future__ import annotations

from decimal import Decimal

from tidings import Bus, Context

from ..plan import Settings
from .events import OrderCancelled, OrderCompleted, OrderPlaced, ShipmentScheduled, StockReleased

__all__ = ["GROUP", "attach", "make_order", "place_order"]

GROUP = "orders"


def make_order(number: int, seed: int) -> OrderPlaced:
    """The `number`-th order of a run: ids ``o-00001``..., a customer and a total."""
    customer = f"c-{(number * 7 + seed) % 40 + 1:03d}"
    total = Decimal(500 + (number * 7919 + seed) % 24_500) / 100
    return OrderPlaced(order_id=f"o-{number:05d}", customer=customer, total=total)


async def place_order(bus: Bus, order: OrderPlaced) -> str:
    """Publish `order`, keyed by its id so every step handles it in order; return the
    event id once the broker has it."""
    return await bus.publish(order, key=order.order_id)


def attach(bus: Bus, settings: Settings) -> None:
    """Subscribe the orders service's handlers to `bus`."""

    @bus.subscribe("shipment.scheduled", group=GROUP, idempotent=True)
    async def complete(event: ShipmentScheduled, ctx: Context) -> None:
        done = OrderCompleted(order_id=event.order_id, customer=event.customer)
        await ctx.publish(done, key=event.order_id)

    @bus.subscribe("stock.released", group=GROUP, idempotent=True)
    async def cancel(event: StockReleased, ctx: Context) -> None:
        cancelled = OrderCancelled(
            order_id=event.order_id, customer=event.customer, reason=event.reason
        )
        await ctx.publish(cancelled, key=event.order_id)
