"""The shipping service: books a courier for every paid order, recorded in its table in the
same transaction as the command's inbox row."""

from __future__ import annotations

import asyncio

from tidings import Bus, Context

from ..plan import Settings
from .db import ensure_tables, shipments
from .events import ScheduleShipment, ShipmentScheduled

__all__ = ["CARRIERS", "GROUP", "attach"]

GROUP = "shipping"
CARRIERS = ("postal", "express", "courier")


def attach(bus: Bus, settings: Settings) -> None:
    """Subscribe the shipping service's handler to `bus`."""

    @bus.subscribe("shipping.schedule", group=GROUP, transactional=True)
    async def schedule(command: ScheduleShipment, ctx: Context) -> None:
        await ensure_tables(ctx.session)
        await asyncio.sleep(settings.seconds(0.01))  # the courier's booking API
        carrier = CARRIERS[sum(map(ord, command.order_id)) % len(CARRIERS)]
        await ctx.session.execute(
            shipments.insert().values(order_id=command.order_id, carrier=carrier)
        )
        scheduled = ShipmentScheduled(order_id=command.order_id, carrier=carrier)
        await ctx.publish(scheduled, key=command.order_id)
