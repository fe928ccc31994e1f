"""The checkout saga: one instance per order, orchestrating inventory, payment and shipping.

It sends each service a command and moves on when the service's event comes back: stock
reserved, card charged (within a timeout), shipment scheduled, order completed. A step that
succeeded is pushed on the order's compensation stack; when the card is declined or payment
does not answer in time, the stack is undone in reverse order, one undo at a time (refund
the payment, then release the stock), and the order ends compensated. After a timeout
nobody knows whether the card was charged, so the payment is refunded where it was.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from tidings.sagas import Saga, SagaContext, on, start

from .events import (
    ChargeCard,
    OrderCancelled,
    OrderCompleted,
    OrderPlaced,
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
    PaymentTimedOut,
    RefundPayment,
    ReleaseStock,
    ReserveStock,
    ScheduleShipment,
    ShipmentScheduled,
    StockReleased,
    StockReserved,
)

__all__ = ["Checkout", "checkout_for"]


class Checkout(Saga, name="checkout"):
    """The state of one order's checkout.

    Attributes:
        status: reserving, charging, shipping, compensating; completed or compensated.
        done: the steps that succeeded, in order (``stock``, ``payment``): the
            compensation stack.
        undo: what is left to undo, next first.
        payment_timeout: the token of the pending payment timeout.
        reason: why the order was compensated.
    """

    status: str = "new"
    customer: str = ""
    total: Decimal = Decimal(0)
    sku: str = ""
    quantity: int = 0
    done: list[str] = []
    undo: list[str] = []
    payment_timeout: str | None = None
    reason: str = ""

    timeout_after: ClassVar[float] = 15 * 60.0
    """Seconds payment has to answer (see `checkout_for`)."""

    @start("order.placed", key=lambda e: e.order_id)
    async def placed(self, event: OrderPlaced, ctx: SagaContext) -> None:
        self.status, self.customer, self.total = "reserving", event.customer, event.total
        self.sku, self.quantity = event.sku, event.quantity
        reserve = ReserveStock(order_id=self.key, sku=event.sku, quantity=event.quantity)
        await ctx.send(reserve, to="inventory")

    @on("stock.reserved", key=lambda e: e.order_id)
    async def reserved(self, event: StockReserved, ctx: SagaContext) -> None:
        if self.status != "reserving":
            return
        self.status, self.done = "charging", [*self.done, "stock"]
        charge = ChargeCard(order_id=self.key, customer=self.customer, amount=self.total)
        await ctx.send(charge, to="payment")
        timeout = PaymentTimedOut(order_id=self.key)
        self.payment_timeout = await ctx.schedule(timeout, after=self.timeout_after)

    @on("payment.captured", key=lambda e: e.order_id)
    async def captured(self, event: PaymentCaptured, ctx: SagaContext) -> None:
        if self.status != "charging":
            return  # an answer after the timeout: the compensation refunds it
        ctx.cancel(self.payment_timeout)
        self.status, self.done = "shipping", [*self.done, "payment"]
        await ctx.send(ScheduleShipment(order_id=self.key, customer=self.customer), to="shipping")

    @on("payment.declined", key=lambda e: e.order_id)
    async def declined(self, event: PaymentDeclined, ctx: SagaContext) -> None:
        if self.status == "charging":
            ctx.cancel(self.payment_timeout)
            await self._compensate(event.reason, ctx)

    @on("checkout.payment_timeout", key=lambda e: e.order_id)
    async def timed_out(self, event: PaymentTimedOut, ctx: SagaContext) -> None:
        if self.status == "charging":
            # The charge may have happened with its answer lost: refund it where it did.
            self.done = [*self.done, "payment"]
            await self._compensate("payment timed out", ctx)

    @on("shipment.scheduled", key=lambda e: e.order_id)
    async def shipped(self, event: ShipmentScheduled, ctx: SagaContext) -> None:
        self.status = "completed"
        await ctx.publish(OrderCompleted(order_id=self.key, customer=self.customer))
        ctx.complete(status="completed")

    @on("payment.refunded", key=lambda e: e.order_id)
    async def refunded(self, event: PaymentRefunded, ctx: SagaContext) -> None:
        await self._undone("payment", ctx)

    @on("stock.released", key=lambda e: e.order_id)
    async def released(self, event: StockReleased, ctx: SagaContext) -> None:
        await self._undone("stock", ctx)

    async def _compensate(self, reason: str, ctx: SagaContext) -> None:
        self.status, self.reason = "compensating", reason
        self.undo = list(reversed(self.done))
        await self._next_undo(ctx)

    async def _undone(self, step: str, ctx: SagaContext) -> None:
        if self.status != "compensating" or not self.undo or self.undo[0] != step:
            return  # a copy of an undo already counted
        self.undo = self.undo[1:]
        await self._next_undo(ctx)

    async def _next_undo(self, ctx: SagaContext) -> None:
        if not self.undo:
            self.status = "compensated"
            cancelled = OrderCancelled(
                order_id=self.key, customer=self.customer, reason=self.reason
            )
            await ctx.publish(cancelled)
            ctx.complete(status="compensated")
        elif self.undo[0] == "payment":
            await ctx.send(RefundPayment(order_id=self.key, reason=self.reason), to="payment")
        else:
            await ctx.send(ReleaseStock(order_id=self.key, reason=self.reason), to="inventory")


def checkout_for(timeout: float) -> type[Checkout]:
    """The checkout saga with `timeout` seconds for payment to answer."""
    if timeout == Checkout.timeout_after:
        return Checkout
    return type("Checkout", (Checkout,), {"timeout_after": timeout, "__module__": __name__})
