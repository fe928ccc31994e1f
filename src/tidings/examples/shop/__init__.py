"""The shop: a checkout saga orchestrates inventory, payment and shipping for each order.

The orders API records an order and publishes ``order.placed`` in one transaction (the
outbox). The *checkout* saga (`tidings.examples.shop.checkout.Checkout`, one instance per
order) sends *inventory* ``inventory.reserve``, then *payment* ``payment.charge`` with a
payment timeout, then *shipping* ``shipping.schedule``, and publishes ``order.completed``;
*orders* records the outcome and *notification* tells the customer.

A declined card (a seeded 10 % of orders) or a payment that does not answer in time (the
gateway charges another 5 % but loses its answer) is compensated in reverse order: the
charge refunded where there was one, then the stock released; the saga publishes
``order.cancelled`` once. Inventory, payment and shipping keep their state in tables of the
shop's database and handle their commands in transactions with the inbox, so no order is
charged twice, whatever crashes.

Run the services with ``tidings run tidings.examples.shop.worker:bus``, or everything at
once with ``tidings demo shop`` (``--chaos`` kills workers as it goes, then checks the
invariants in the database).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tidings import Bus, Context, Retry

from ..plan import Settings
from ..scenario import Audit, Scenario, Tracker, build_bus
from . import db, inventory, notification, orders, payment, shipping
from .checkout import checkout_for
from .events import register_upcasters
from .orders import make_order, place_order
from .payment import declines, loses_answer

__all__ = [
    "DEFAULT_DATABASE",
    "SERVICES",
    "ShopScenario",
    "create_bus",
    "expected_outcome",
    "payment_timeout",
]

DEFAULT_DATABASE = "sqlite+aiosqlite:///tidings-shop.db"
"""The shop's database unless told otherwise: a SQLite file in the current directory."""


def payment_timeout(settings: Settings) -> float:
    """Seconds checkout gives payment to answer: 20 s of simulated time, and at least 5 s.

    A timeout must outlast the queue in front of payment: one shorter than a busy shop's
    answers compensates orders that were paid (refunding them), which is correct but not
    what the plan says."""
    return max(5.0, settings.seconds(20.0))


def _checkout(bus: Bus, settings: Settings) -> None:
    retry = Retry(attempts=5, base=0.05, max_delay=2.0)
    bus.add_saga(checkout_for(payment_timeout(settings)), retry=retry)


SERVICES = {
    "checkout": _checkout,
    "orders": orders.attach,
    "inventory": inventory.attach,
    "payment": payment.attach,
    "shipping": shipping.attach,
    "notification": notification.attach,
}


def create_bus(
    url: str | None = None,
    settings: Settings | None = None,
    *,
    services: Iterable[str] = SERVICES,
    consume: bool = True,
    middleware: Iterable[Any] = (),
    name: str = "tidings",
    dedupe: str | None = None,
    database: Any = None,
    **options: Any,
) -> Bus:
    """A bus on `url` with the shop's `services` attached (all of them by default), and
    `database` (an async SQLAlchemy URL; `DEFAULT_DATABASE` by default) for the shop's
    tables, the outbox, the inbox and the checkout sagas.

    Outcome events nobody subscribes to (an order completed while no dashboard listens)
    are accepted, hence ``on_unroutable="ignore"``. `name` (the bus namespace), `dedupe`
    and `options` (transport options, e.g. ``management_url``) go to `Bus` unchanged.
    """
    settings = settings or Settings()
    options.setdefault("outbox_lease", settings.lease)
    register_upcasters()
    bus = build_bus(
        url,
        settings,
        {name: SERVICES[name] for name in services},
        consume=consume,
        middleware=middleware,
        name=name,
        dedupe=dedupe,
        database=database or DEFAULT_DATABASE,
        **options,
    )
    db.tune(bus.database)
    return bus


def expected_outcome(seed: int, count: int) -> dict[str, int]:
    """How `count` orders end in a run seeded with `seed`, from the plan alone: declined
    cards and lost payment answers are compensated."""
    ids = [make_order(n, seed).order_id for n in range(1, count + 1)]
    compensated = sum(1 for i in ids if declines(seed, i) or loses_answer(seed, i))
    return {"orders": count, "completed": count - compensated, "compensated": compensated}


class ShopScenario(Scenario):
    """``tidings demo shop``."""

    name = "shop"
    unit = "orders"
    default_count = 200
    groups = ("checkout", "inventory", "payment", "shipping", "orders", "notification")
    worker = "tidings.examples.shop.worker:bus"
    outcome_types = ("order.completed", "order.cancelled")
    uses_database = True

    def create_bus(
        self,
        url: str | None,
        settings: Settings,
        *,
        consume: bool = True,
        middleware: Iterable[Any] = (),
        **options: Any,
    ) -> Bus:
        return create_bus(url, settings, consume=consume, middleware=middleware, **options)

    async def publish(self, bus: Bus, number: int, settings: Settings, tracker: Tracker) -> None:
        order = make_order(number, settings.seed)
        tracker.published(order.order_id)
        await place_order(bus, order)

    def track(
        self, event_type: str, data: Mapping[str, Any], ctx: Context, tracker: Tracker
    ) -> None:
        outcome = "completed" if event_type == "order.completed" else "compensated"
        tracker.saw(outcome, str(data["order_id"]), final=True)

    def summary(self, tracker: Tracker, count: int, dead: Mapping[str, int]) -> dict[str, int]:
        return {
            "orders": count,
            "completed": tracker.count("completed"),
            "compensated": tracker.count("compensated"),
            "dead_lettered": sum(dead.values()),
        }

    def done(self, tracker: Tracker) -> int:
        return len(tracker.keys("completed") | tracker.keys("compensated"))

    def finished(self, tracker: Tracker, count: int, dead: Mapping[str, int]) -> bool:
        return self.done(tracker) + sum(dead.values()) >= count

    def expected(self, settings: Settings, count: int) -> dict[str, int]:
        return {**expected_outcome(settings.seed, count), "dead_lettered": 0}

    async def prepare(self, bus: Bus) -> None:
        await db.reset(bus.database, bus.name)

    async def audit(self, bus: Bus) -> Audit:
        return await db.audit(bus.database, bus.name)

    def describe(self, counts: Mapping[str, int]) -> str:
        return (
            f"{counts['orders']} orders: {counts['completed']} completed, "
            f"{counts['compensated']} compensated after a declined card or a payment "
            f"timeout (refunded where charged, stock released), "
            f"{counts['dead_lettered']} dead-lettered."
        )
