"""The notification service: tells the customer how their order ended.

One group, two handlers: a completed order and a cancelled order are different event
types, each dispatched to its own handler.
"""

from __future__ import annotations

import asyncio
import logging

from tidings import Bus

from ..plan import Settings
from .events import OrderCancelled, OrderCompleted

__all__ = ["GROUP", "attach"]

GROUP = "notification"
logger = logging.getLogger("tidings.examples.shop")


def attach(bus: Bus, settings: Settings) -> None:
    """Subscribe the notification service's handlers to `bus`."""

    @bus.subscribe("order.completed", group=GROUP)
    async def shipped(event: OrderCompleted) -> None:
        await asyncio.sleep(settings.seconds(0.005))  # the e-mail provider
        logger.info("told %s that order %s is on its way", event.customer, event.order_id)

    @bus.subscribe("order.cancelled", group=GROUP)
    async def cancelled(event: OrderCancelled) -> None:
        await asyncio.sleep(settings.seconds(0.005))
        logger.info("told %s that order %s was cancelled", event.customer, event.order_id)
