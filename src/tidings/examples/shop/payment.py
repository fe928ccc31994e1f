"""The payment service: charges reserved orders.

The simulated gateway declines a seeded share of cards (``payment.declined`` starts the
compensation) and times out on the first attempt of another share (the broker retries it
later; the worker does not wait). Both are decided per order by `tidings.examples.plan`.
"""

from __future__ import annotations

import asyncio

from tidings import Bus, Context, Retry

from ..plan import Settings, happens
from .events import PaymentCaptured, PaymentDeclined, StockReserved

__all__ = ["DECLINE_SHARE", "GROUP", "TIMEOUT_SHARE", "GatewayTimeout", "attach", "declines"]

GROUP = "payment"
DECLINE_SHARE = 0.10
TIMEOUT_SHARE = 0.05


class GatewayTimeout(Exception):
    """The (simulated) payment gateway did not answer in time: worth a retry."""


def declines(seed: int, order_id: str) -> bool:
    """Whether the card of `order_id` is declined in the run seeded with `seed`."""
    return happens(DECLINE_SHARE, seed, "payment.declined", order_id)


def times_out(seed: int, order_id: str) -> bool:
    """Whether the gateway times out on the first charge of `order_id`."""
    return happens(TIMEOUT_SHARE, seed, "payment.timeout", order_id)


def attach(bus: Bus, settings: Settings) -> None:
    """Subscribe the payment service's handler to `bus`."""

    @bus.subscribe(
        "stock.reserved",
        group=GROUP,
        idempotent=True,  # never charge twice for one reservation
        retry=Retry(attempts=5, base=0.05, max_delay=2.0, never=(ValueError,)),
    )
    async def charge(reserved: StockReserved, ctx: Context) -> None:
        await asyncio.sleep(settings.seconds(0.02))  # the gateway call
        if ctx.attempt == 1 and times_out(settings.seed, reserved.order_id):
            raise GatewayTimeout(f"payment gateway timed out charging {reserved.order_id}")
        if declines(settings.seed, reserved.order_id):
            declined = PaymentDeclined(
                order_id=reserved.order_id, customer=reserved.customer, reason="card declined"
            )
            await ctx.publish(declined, key=reserved.order_id)
            return
        captured = PaymentCaptured(
            order_id=reserved.order_id, customer=reserved.customer, amount=reserved.total
        )
        await ctx.publish(captured, key=reserved.order_id)
