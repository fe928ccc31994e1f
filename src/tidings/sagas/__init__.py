"""Sagas: process managers whose state is persisted in the application's database.

A saga coordinates a long-running process (an order through stock, payment and shipping)
from the events it receives. Its fields are the persisted state of one instance; its steps
are methods marked with `start` (an event that creates the instance) or `on` (an event for
an instance that exists); each finds the instance's key in the event:

```python
from datetime import timedelta

from tidings.sagas import Saga, SagaContext, on, start


class Checkout(Saga, name="checkout"):
    order_id: str = ""
    status: str = "new"
    payment_timeout: str | None = None

    @start("order.placed", key=lambda e: e.order_id)
    async def placed(self, event: OrderPlaced, ctx: SagaContext) -> None:
        self.order_id, self.status = event.order_id, "reserving"
        await ctx.send(ReserveStock(order_id=event.order_id), to="inventory")
        self.payment_timeout = await ctx.schedule(
            PaymentTimedOut(order_id=event.order_id), after=timedelta(minutes=15)
        )

    @on("payment.declined", key=lambda e: e.order_id)
    async def declined(self, event: PaymentDeclined, ctx: SagaContext) -> None:
        ctx.cancel(self.payment_timeout)
        await ctx.send(ReleaseStock(order_id=event.order_id), to="inventory")
        ctx.complete(status="compensated")


bus = Bus("sqlite:///tidings.db", database="sqlite+aiosqlite:///app.db")
bus.add_saga(Checkout)
```

`bus.add_saga` needs the bus's ``database`` (``pip install 'tidings[sql]'``): the saga is a
group named after it, whose steps run as transactional handlers. Each transition loads the
instance's row, runs the step and saves the row with optimistic concurrency, in one
transaction with the event's inbox row and the messages the step sent (the outbox): a
duplicate delivery has no second effect, and a transition that lost a race with another
event of the instance is computed again from the new row. Timeouts (`SagaContext.schedule`)
are durable delayed messages; a cancelled or stale one is ignored when it comes back.

`tidings sagas list NAME` and `tidings sagas show NAME KEY` show the instances, their state,
history and pending timeouts (`list_instances` and `get_instance` read them in Python);
`tidings.sagas.testing.SagaScenario` tests a saga's transitions without a broker or a
database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._context import PendingTimeout, SagaContext
from ._definition import Saga, on, start
from ._transition import SagaInstance

if TYPE_CHECKING:
    from ._store import get_instance, list_instances

__all__ = [
    "PendingTimeout",
    "Saga",
    "SagaContext",
    "SagaInstance",
    "get_instance",
    "list_instances",
    "on",
    "start",
]


def __getattr__(name: str) -> Any:
    # Reading instances needs SQLAlchemy; defining and testing a saga does not.
    if name in ("get_instance", "list_instances"):
        from . import _store

        return getattr(_store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
