"""The shop's events: facts in past tense, one pydantic model each."""

from __future__ import annotations

from decimal import Decimal

from tidings import Event

__all__ = [
    "OrderCancelled",
    "OrderCompleted",
    "OrderPlaced",
    "PaymentCaptured",
    "PaymentDeclined",
    "ShipmentScheduled",
    "StockReleased",
    "StockReserved",
]


class OrderPlaced(Event, type="order.placed", version=1):
    """A customer placed an order (published by the orders API)."""

    order_id: str
    customer: str
    total: Decimal


class StockReserved(Event, type="stock.reserved", version=1):
    """Inventory set the order's items aside."""

    order_id: str
    customer: str
    total: Decimal


class PaymentCaptured(Event, type="payment.captured", version=1):
    """Payment charged the customer's card."""

    order_id: str
    customer: str
    amount: Decimal


class PaymentDeclined(Event, type="payment.declined", version=1):
    """The card was declined: the steps before payment must be undone."""

    order_id: str
    customer: str
    reason: str


class StockReleased(Event, type="stock.released", version=1):
    """Compensation: inventory put a declined order's items back."""

    order_id: str
    customer: str
    reason: str


class ShipmentScheduled(Event, type="shipment.scheduled", version=1):
    """Shipping booked a courier for a paid order."""

    order_id: str
    customer: str
    carrier: str


class OrderCompleted(Event, type="order.completed", version=1):
    """Terminal state: the order was paid and its shipment scheduled."""

    order_id: str
    customer: str


class OrderCancelled(Event, type="order.cancelled", version=1):
    """Terminal state: the order was compensated (stock released, nothing charged)."""

    order_id: str
    customer: str
    reason: str
