"""The shipping service: books a courier for every paid order."""

from __future__ import annotations

import asyncio

from tidings import Bus, Context

from ..plan import Settings
from .events import PaymentCaptured, ShipmentScheduled

__all__ = ["GROUP", "attach"]

GROUP = "shipping"
CARRIERS = ("postal", "express", "courier")


def attach(bus: Bus, settings: Settings) -> None:
    """Subscribe the shipping service's handler to `bus`."""

    @bus.subscribe("payment.captured", group=GROUP, idempotent=True)
    async def schedule(payment: PaymentCaptured, ctx: Context) -> None:
        await asyncio.sleep(settings.seconds(0.01))  # the courier's booking API
        carrier = CARRIERS[sum(map(ord, payment.order_id)) % len(CARRIERS)]
        scheduled = ShipmentScheduled(
            order_id=payment.order_id, customer=payment.customer, carrier=carrier
        )
        await ctx.publish(scheduled, key=payment.order_id)
