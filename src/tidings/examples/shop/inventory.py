"""The inventory service: reserves an order's stock, and releases it when checkout
compensates the order.

Both run in a transaction of the shop's database with the command's inbox row, so a copy
of a command (a redelivery after a crash) changes no stock twice. The group is ordered by
order id: an order's release never overtakes its reservation.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select, update

from tidings import Bus, Context, Retry

from ..plan import Settings
from .db import INITIAL_STOCK, ensure_tables, reservations, stock
from .events import ReleaseStock, ReserveStock, StockReleased, StockReserved

__all__ = ["GROUP", "attach"]

GROUP = "inventory"


def attach(bus: Bus, settings: Settings) -> None:
    """Subscribe the inventory service's handlers to `bus`."""
    retry = Retry(attempts=5, base=0.05, max_delay=2.0)

    @bus.subscribe("inventory.reserve", group=GROUP, ordered=True, transactional=True, retry=retry)
    async def reserve(command: ReserveStock, ctx: Context) -> None:
        await ensure_tables(ctx.session)
        await asyncio.sleep(settings.seconds(0.01))  # the warehouse system
        taken = await ctx.session.execute(
            update(stock)
            .where(stock.c.sku == command.sku, stock.c.available >= command.quantity)
            .values(available=stock.c.available - command.quantity)
        )
        if not getattr(taken, "rowcount", 0):
            # A SKU this database has not seen yet (no demo set it up): stock it first.
            await ctx.session.execute(
                stock.insert().values(sku=command.sku, available=INITIAL_STOCK - command.quantity)
            )
        await ctx.session.execute(
            reservations.insert().values(
                order_id=command.order_id, sku=command.sku, quantity=command.quantity
            )
        )
        reserved = StockReserved(
            order_id=command.order_id, sku=command.sku, quantity=command.quantity
        )
        await ctx.publish(reserved, key=command.order_id)

    @bus.subscribe("inventory.release", group=GROUP, ordered=True, transactional=True, retry=retry)
    async def release(command: ReleaseStock, ctx: Context) -> None:
        await ensure_tables(ctx.session)
        held = (
            await ctx.session.execute(
                select(reservations).where(
                    reservations.c.order_id == command.order_id, ~reservations.c.released
                )
            )
        ).first()
        if held is not None:
            await ctx.session.execute(
                update(reservations)
                .where(reservations.c.order_id == command.order_id)
                .values(released=True)
            )
            await ctx.session.execute(
                update(stock)
                .where(stock.c.sku == held.sku)
                .values(available=stock.c.available + held.quantity)
            )
        released = StockReleased(order_id=command.order_id, reason=command.reason)
        await ctx.publish(released, key=command.order_id)
