"""A producer of another process: publishes ``order.placed`` of the version given.

``python producer.py URL VERSION ORDER_ID...`` publishes one event per order id with the
data of that version of the order schema (the versions a service ships over its life).
"""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal

from tidings import Bus, Event


class OrderPlacedV1(Event, type="order.placed", version=1):
    order_id: str
    total: Decimal


class OrderPlacedV3(Event, type="order.placed", version=3):
    order_id: str
    amount: Decimal
    currency: str
    channel: str


def event(version: int, order_id: str) -> Event:
    if version == 1:
        return OrderPlacedV1(order_id=order_id, total=Decimal("9.90"))
    return OrderPlacedV3(order_id=order_id, amount=Decimal("9.90"), currency="USD", channel="web")


async def main(url: str, version: int, order_ids: list[str]) -> None:
    async with Bus(url, consume=False) as bus:
        for order_id in order_ids:
            await bus.publish(event(version, order_id), key=order_id)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3:]))
