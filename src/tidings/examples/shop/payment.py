"""The payment service: charges cards, and refunds a charge when checkout compensates.

Its handlers run in a transaction of the shop's database with the command's inbox row
(``transactional=True``): the charge row, the inbox row and the reply commit together, so
an order is never charged twice, however often the command is delivered.

The simulated gateway declines a seeded 10 % of cards, times out on the first attempt of
5 % of charges (the broker retries them later; the worker does not wait), and for another
5 % charges the card but loses its answer: checkout's payment timeout then refunds it.
Each is decided per order by `tidings.examples.plan`. The group is ordered by order id, so a
refund never overtakes its charge.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select, update

from tidings import Bus, Context, Retry

from ..plan import Settings, happens
from .db import charges, ensure_tables, money, voids
from .events import ChargeCard, PaymentCaptured, PaymentDeclined, PaymentRefunded, RefundPayment

__all__ = [
    "DECLINE_SHARE",
    "GROUP",
    "LOST_SHARE",
    "TIMEOUT_SHARE",
    "GatewayTimeout",
    "attach",
    "declines",
    "loses_answer",
]

GROUP = "payment"
DECLINE_SHARE = 0.10
TIMEOUT_SHARE = 0.05
LOST_SHARE = 0.05


class GatewayTimeout(Exception):
    """The (simulated) payment gateway did not answer in time: worth a retry."""


def declines(seed: int, order_id: str) -> bool:
    """Whether the card of `order_id` is declined in the run seeded with `seed`."""
    return happens(DECLINE_SHARE, seed, "payment.declined", order_id)


def times_out(seed: int, order_id: str) -> bool:
    """Whether the gateway times out on the first charge of `order_id`."""
    return happens(TIMEOUT_SHARE, seed, "payment.timeout", order_id)


def loses_answer(seed: int, order_id: str) -> bool:
    """Whether the gateway charges `order_id` but its answer is lost (a card not declined)."""
    return not declines(seed, order_id) and happens(LOST_SHARE, seed, "payment.lost", order_id)


def attach(bus: Bus, settings: Settings) -> None:
    """Subscribe the payment service's handlers to `bus`."""
    retry = Retry(attempts=5, base=0.05, max_delay=2.0, never=(ValueError,))

    @bus.subscribe("payment.charge", group=GROUP, ordered=True, transactional=True, retry=retry)
    async def charge(command: ChargeCard, ctx: Context) -> None:
        await ensure_tables(ctx.session)
        await asyncio.sleep(settings.seconds(0.02))  # the gateway call
        order_id = command.order_id
        if ctx.attempt == 1 and times_out(settings.seed, order_id):
            raise GatewayTimeout(f"payment gateway timed out charging {order_id}")
        voided = await ctx.session.execute(select(voids).where(voids.c.order_id == order_id))
        if voided.first() is not None or declines(settings.seed, order_id):
            reason = "card declined" if declines(settings.seed, order_id) else "order cancelled"
            await ctx.publish(PaymentDeclined(order_id=order_id, reason=reason), key=order_id)
            return
        await ctx.session.execute(charges.insert().values(order_id=order_id, amount=command.amount))
        if loses_answer(settings.seed, order_id):
            return  # charged, but the answer never reaches checkout
        captured = PaymentCaptured(order_id=order_id, amount=command.amount)
        await ctx.publish(captured, key=order_id)

    @bus.subscribe("payment.refund", group=GROUP, ordered=True, transactional=True, retry=retry)
    async def refund(command: RefundPayment, ctx: Context) -> None:
        await ensure_tables(ctx.session)
        order_id = command.order_id
        charged = (
            await ctx.session.execute(
                select(charges).where(charges.c.order_id == order_id, ~charges.c.refunded)
            )
        ).all()
        if charged:
            await ctx.session.execute(
                update(charges).where(charges.c.order_id == order_id).values(refunded=True)
            )
        else:
            await ctx.session.execute(voids.insert().values(order_id=order_id))
        amount = money(sum((money(c.amount) for c in charged), money(0)))
        await ctx.publish(PaymentRefunded(order_id=order_id, amount=amount), key=order_id)
