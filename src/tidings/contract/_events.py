"""The messages the contract publishes (plain pydantic models, as a user would write them)."""

from __future__ import annotations

from .._core.messages import Command, Event

__all__ = [
    "BigEvent",
    "ChargeCard",
    "NobodyListens",
    "Order",
    "OrderPlaced",
    "OrderPlacedEu",
    "OrderShipped",
    "ParcelShipped",
    "PriceGiven",
    "PriceQuote",
    "SeqItem",
    "StockReserved",
]


class OrderPlaced(Event, type="order.placed", version=1):
    """An order was placed (a field named ``id`` on purpose: it is data, not the envelope)."""

    order_id: str
    total: str = "9.90"
    id: str = "not-the-event-id"


class OrderPlacedEu(Event, type="order.placed.eu"):
    """Three words, for topic pattern tests."""

    order_id: str


class Order(Event, type="order"):
    """One word, for topic pattern tests (``order.#`` matches it, ``order.*`` does not)."""

    order_id: str


class OrderShipped(Event, type="order.shipped"):
    """A second type of the order service."""

    order_id: str


class StockReserved(Event, type="stock.reserved"):
    """Published by a handler through its context."""

    order_id: str
    line: int = 0


class ParcelShipped(Event, type="parcel.shipped"):
    """Published by a handler of a handler (causation chains)."""

    order_id: str


class ChargeCard(Command, type="payment.charge"):
    """A command sent to one group."""

    order_id: str
    amount: str = "9.90"


class NobodyListens(Event, type="nobody.listens"):
    """A type no group subscribes to."""

    note: str = ""


class BigEvent(Event, type="order.big"):
    """Carries a payload of any size."""

    blob: str


class SeqItem(Event, type="seq.item"):
    """The n-th event of an ordering key."""

    key: str
    n: int


class PriceQuote(Command, type="price.quote"):
    """A request: the price of `sku` for `quantity`."""

    sku: str
    quantity: int = 1


class PriceGiven(Event, type="price.given"):
    """The reply to `PriceQuote`."""

    sku: str
    cents: int
