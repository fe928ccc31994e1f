"""The shop: an order goes through inventory, payment and shipping, by choreography.

``order.placed`` -> *inventory* reserves stock (``stock.reserved``) -> *payment* charges
the card (``payment.captured``) -> *shipping* books a courier (``shipment.scheduled``) ->
*orders* completes the order (``order.completed``) -> *notification* tells the customer.

A declined card (a seeded 10 % of orders) starts the compensation: *payment* publishes
``payment.declined`` -> *inventory* releases the stock (``stock.released``) -> *orders*
cancels the order (``order.cancelled``) -> *notification* apologises. Every event carries
the order id as its key, so each step sees one order's events in order.

Run the services with ``tidings run tidings.examples.shop.worker:bus``, or everything at
once with ``tidings demo shop``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tidings import Bus, Context

from ..plan import Settings
from ..scenario import Scenario, Tracker, build_bus
from . import inventory, notification, orders, payment, shipping
from .orders import make_order, place_order
from .payment import declines

__all__ = ["SERVICES", "ShopScenario", "create_bus", "expected_outcome"]

SERVICES = {
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
    **options: Any,
) -> Bus:
    """A bus on `url` with the shop's `services` attached (all of them by default).

    Outcome events nobody subscribes to yet (an order completed while no dashboard
    listens) are accepted, hence ``on_unroutable="ignore"``; every step of the flow has
    its group declared when the bus starts.

    `name` (the bus namespace), `dedupe` (an external dedupe store such as
    ``redis://host:6379/0``, which the idempotent groups need on RabbitMQ) and `options`
    (transport options, e.g. ``management_url``) go to `Bus` unchanged.
    """
    return build_bus(
        url,
        settings or Settings(),
        {name: SERVICES[name] for name in services},
        consume=consume,
        middleware=middleware,
        name=name,
        dedupe=dedupe,
        **options,
    )


def expected_outcome(seed: int, count: int) -> dict[str, int]:
    """How `count` orders end in a run seeded with `seed`, from the plan alone."""
    ids = [make_order(n, seed).order_id for n in range(1, count + 1)]
    compensated = sum(1 for order_id in ids if declines(seed, order_id))
    return {"orders": count, "completed": count - compensated, "compensated": compensated}


class ShopScenario(Scenario):
    """``tidings demo shop``."""

    name = "shop"
    unit = "orders"
    default_count = 200
    groups = ("inventory", "payment", "shipping", "orders", "notification")
    worker = "tidings.examples.shop.worker:bus"
    outcome_types = ("order.completed", "order.cancelled")

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

    def describe(self, counts: Mapping[str, int]) -> str:
        return (
            f"{counts['orders']} orders: {counts['completed']} completed, "
            f"{counts['compensated']} compensated after a declined card "
            f"(stock released, order cancelled), {counts['dead_lettered']} dead-lettered."
        )
