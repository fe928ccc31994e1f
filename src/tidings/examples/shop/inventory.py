"""The inventory service: reserves stock for new orders, releases it for declined ones.

The group is ordered by order id, so the release of an order can never overtake its
reservation, while other orders go on in parallel.
"""

from __future__ import annotations

import asyncio

from tidings import Bus, Context, Retry

from ..plan import Settings
from .events import OrderPlaced, PaymentDeclined, StockReleased, StockReserved

__all__ = ["GROUP", "attach"]

GROUP = "inventory"


def attach(bus: Bus, settings: Settings) -> None:
    """Subscribe the inventory service's handlers to `bus`."""
    retry = Retry(attempts=5, base=0.05, max_delay=2.0)

    @bus.subscribe("order.placed", group=GROUP, ordered=True, idempotent=True, retry=retry)
    async def reserve(order: OrderPlaced, ctx: Context) -> None:
        await asyncio.sleep(settings.seconds(0.01))  # the stock database
        reserved = StockReserved(
            order_id=order.order_id, customer=order.customer, total=order.total
        )
        await ctx.publish(reserved, key=order.order_id)

    @bus.subscribe("payment.declined", group=GROUP, ordered=True, idempotent=True, retry=retry)
    async def release(declined: PaymentDeclined, ctx: Context) -> None:
        await asyncio.sleep(settings.seconds(0.01))
        released = StockReleased(
            order_id=declined.order_id, customer=declined.customer, reason=declined.reason
        )
        await ctx.publish(released, key=declined.order_id)
