"""The shop's messages: events (facts in past tense) and commands (requests to one service),
one pydantic model each."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tidings import Command, Event
from tidings.schemas import registry, upcaster

__all__ = [
    "ChargeCard",
    "OrderCancelled",
    "OrderCompleted",
    "OrderPlaced",
    "PaymentCaptured",
    "PaymentDeclined",
    "PaymentRefunded",
    "PaymentTimedOut",
    "RefundPayment",
    "ReleaseStock",
    "ReserveStock",
    "ScheduleShipment",
    "ShipmentScheduled",
    "StockReleased",
    "StockReserved",
    "order_placed_v1_to_v2",
    "register_upcasters",
]


class OrderPlaced(Event, type="order.placed", version=2):
    """A customer placed an order (published by the orders API).

    Version 2 added `currency`. Version 1 events (from an orders API not yet upgraded, from
    the dead-letter queue or the retained log) are brought up to date on the way in by
    `order_placed_v1_to_v2`, which `register_upcasters` registers when a shop bus is made.
    """

    order_id: str
    customer: str
    total: Decimal
    currency: str
    sku: str = "sku-1"
    quantity: int = 1


def order_placed_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 had no currency: the shop sold in euros only."""
    return {"currency": "EUR", **data}


def register_upcasters() -> None:
    """Register the shop's upcasters (once). Not done on import: the registry is keyed by
    message type, and importing the example (as the ``tidings`` command does) must not give
    another application's ``order.placed`` an upcaster."""
    if 1 not in registry.steps("order.placed"):
        upcaster("order.placed", from_version=1)(order_placed_v1_to_v2)


class ReserveStock(Command, type="inventory.reserve", version=1):
    """Checkout asks inventory to set an order's items aside."""

    order_id: str
    sku: str
    quantity: int


class StockReserved(Event, type="stock.reserved", version=1):
    """Inventory set the order's items aside."""

    order_id: str
    sku: str = ""
    quantity: int = 0


class ReleaseStock(Command, type="inventory.release", version=1):
    """Compensation: checkout asks inventory to put an order's items back."""

    order_id: str
    reason: str


class StockReleased(Event, type="stock.released", version=1):
    """Compensation: inventory put the order's items back."""

    order_id: str
    reason: str


class ChargeCard(Command, type="payment.charge", version=1):
    """Checkout asks payment to charge the customer's card."""

    order_id: str
    customer: str
    amount: Decimal


class PaymentCaptured(Event, type="payment.captured", version=1):
    """Payment charged the customer's card."""

    order_id: str
    amount: Decimal


class PaymentDeclined(Event, type="payment.declined", version=1):
    """The card was declined: nothing was charged."""

    order_id: str
    reason: str


class PaymentTimedOut(Command, type="checkout.payment_timeout", version=1):
    """Checkout's own timeout: payment did not answer in time."""

    order_id: str


class RefundPayment(Command, type="payment.refund", version=1):
    """Compensation: checkout asks payment to refund the order's charge, if there is one
    (after a timeout nobody knows whether the card was charged)."""

    order_id: str
    reason: str


class PaymentRefunded(Event, type="payment.refunded", version=1):
    """Payment refunded the order's charge (`amount` 0 when there was none: then a charge
    arriving later is refused)."""

    order_id: str
    amount: Decimal


class ScheduleShipment(Command, type="shipping.schedule", version=1):
    """Checkout asks shipping to book a courier for a paid order."""

    order_id: str
    customer: str


class ShipmentScheduled(Event, type="shipment.scheduled", version=1):
    """Shipping booked a courier for a paid order."""

    order_id: str
    carrier: str


class OrderCompleted(Event, type="order.completed", version=1):
    """Terminal: the order was reserved, paid and its shipment scheduled."""

    order_id: str
    customer: str


class OrderCancelled(Event, type="order.cancelled", version=1):
    """Terminal: the order was compensated (refunded where charged, stock released)."""

    order_id: str
    customer: str
    reason: str
