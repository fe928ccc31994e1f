"""The shop behind ``tidings demo``: an orders service and two services that react to it.

The orders service publishes ``order.placed``. *billing* charges each order and publishes
``payment.captured``; *shipping* ships what was paid. The payment gateway is made to fail
the way real ones do, deterministically for a given seed:

* a share of orders hits a gateway timeout on the first attempt and succeeds on the retry
  (retries are scheduled by the broker, the worker never sleeps on them);
* a share of orders is paid with a declined card: billing raises `Permanent` and the order
  goes straight to billing's dead-letter queue, where ``tidings dlq`` can inspect it.

A `Tally` middleware counts what each group handled, retried and how long it took from
publish to done, which is what the demo's summary shows.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal

from ._bus import Bus
from ._context import Context
from ._exceptions import Permanent
from ._messages import Event
from ._retry import Retry

__all__ = [
    "DECLINED_CARD",
    "GROUPS",
    "DemoShop",
    "GatewayTimeout",
    "GroupTally",
    "OrderPlaced",
    "PaymentCaptured",
    "Tally",
    "build_shop",
]

DECLINED_CARD = "0002"
GOOD_CARD = "4242"
GROUPS = ("billing", "shipping")
FLAKY_SHARE = 0.2
DECLINED_SHARE = 0.08


class OrderPlaced(Event, type="order.placed", version=1):
    """An order was placed in the shop."""

    order_id: str
    customer: str
    total: Decimal
    card: str


class PaymentCaptured(Event, type="payment.captured", version=1):
    """Billing charged the card of an order."""

    order_id: str
    customer: str
    amount: Decimal


class GatewayTimeout(Exception):
    """The (simulated) payment gateway did not answer in time."""


@dataclass(slots=True)
class GroupTally:
    """What one group did: handled events, those handled after a retry, failed attempts,
    and the latency from publish to handled of each, in seconds."""

    handled: int = 0
    retried: int = 0
    failures: int = 0
    latencies: list[float] = field(default_factory=list)


class Tally:
    """A consume middleware that counts outcomes per group."""

    def __init__(self) -> None:
        self.groups: dict[str, GroupTally] = {g: GroupTally() for g in GROUPS}

    async def consume(self, ctx: Context, call_next: Callable[[], Awaitable[None]]) -> None:
        tally = self.groups.setdefault(ctx.group, GroupTally())
        try:
            await call_next()
        except Exception:
            tally.failures += 1
            raise
        tally.handled += 1
        if ctx.attempt > 1:
            tally.retried += 1
        if ctx.envelope.time is not None:
            tally.latencies.append(max(0.0, time.time() - ctx.envelope.time.timestamp()))


@dataclass(slots=True)
class DemoShop:
    """The demo's bus (with both services subscribed), its orders and its tally."""

    bus: Bus
    tally: Tally
    orders: list[OrderPlaced]
    flaky: frozenset[str]

    @property
    def declined(self) -> int:
        """How many orders are paid with a declined card (they end in the DLQ)."""
        return sum(1 for o in self.orders if o.card == DECLINED_CARD)


def _share(count: int, share: float) -> int:
    return max(1, round(count * share)) if count >= 5 else 0


def make_orders(count: int, rng: random.Random) -> tuple[list[OrderPlaced], frozenset[str]]:
    """`count` orders, some with a declined card, and the ids the gateway times out on."""
    declined = set(rng.sample(range(count), _share(count, DECLINED_SHARE)))
    orders = [
        OrderPlaced(
            order_id=f"o-{n + 1:04d}",
            customer=f"c-{rng.randint(1, 12):02d}",
            total=Decimal(rng.randint(500, 25_000)) / 100,
            card=DECLINED_CARD if n in declined else GOOD_CARD,
        )
        for n in range(count)
    ]
    payable = [o.order_id for o in orders if o.card != DECLINED_CARD]
    flaky = rng.sample(payable, min(len(payable), _share(count, FLAKY_SHARE)))
    return orders, frozenset(flaky)


def build_shop(url: str, *, events: int, seed: int, retry_base: float = 0.05) -> DemoShop:
    """The demo bus on `url` with the billing and shipping subscribers, and `events` orders."""
    rng = random.Random(seed)
    orders, flaky = make_orders(events, rng)
    tally = Tally()
    bus = Bus(url, middleware=[tally])
    retry = Retry(attempts=3, base=retry_base, max_delay=1.0)

    @bus.subscribe("order.placed", group="billing", retry=retry)
    async def charge(order: OrderPlaced, ctx: Context) -> None:
        if order.card == DECLINED_CARD:
            raise Permanent(f"card ending {order.card} declined for order {order.order_id}")
        if order.order_id in flaky and ctx.attempt == 1:
            raise GatewayTimeout(f"payment gateway timed out charging order {order.order_id}")
        await asyncio.sleep(0.002 + random.random() * 0.008)  # the gateway call
        captured = PaymentCaptured(
            order_id=order.order_id, customer=order.customer, amount=order.total
        )
        await ctx.publish(captured, key=order.customer)

    @bus.subscribe("payment.captured", group="shipping", retry=retry)
    async def ship(payment: PaymentCaptured) -> None:
        await asyncio.sleep(0.001 + random.random() * 0.004)  # book the courier

    return DemoShop(bus=bus, tally=tally, orders=orders, flaky=flaky)
