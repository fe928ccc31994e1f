"""Testing without a broker: the real pipeline on the memory transport, with a clock you move.

```python
from tidings.testing import TestBus

async def test_reserves_stock():
    async with TestBus(bus) as tb:
        await bus.publish(OrderPlaced(order_id="o-1", total=Decimal("9.90")))
        await tb.drain()                      # until nothing is ready or in flight
        assert tb.published_types() == ["order.placed", "stock.reserved"]
        await tb.drain(retries=True)          # also run every scheduled retry, moving the clock
        assert tb.dead_lettered == []
```

`TestBus` swaps the bus's transport for a private in-memory broker, so retries, dead
letters, idempotency and the context's buffered publishing behave as in production, while
back-off delays wait for ``tb.clock.advance(seconds)`` instead of real time. On a bus with a
``database`` the outbox, the inbox and sagas run too: a saga's timeout (a delayed message)
is due once the clock passes it, so a 15-minute timeout takes no real time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from ._clock import ManualClock
from ._codec.cloudevents import decode
from ._codec.envelope import DecodeError, Envelope
from ._core.bus import Bus
from ._core.dlq import DeadLetter, _to_public
from .transports._failure import Failure
from .transports._message import Delivery, OutgoingMessage
from .transports._options import TransportOptions
from .transports.memory import MemoryBroker, MemoryTransport

__all__ = ["ManualClock", "PublishedMessage", "TestBus"]


@dataclass(frozen=True, slots=True)
class PublishedMessage:
    """One message the bus published (events, commands and context publishes alike).

    Attributes:
        envelope: its CloudEvents attributes (None if it could not be decoded).
        data: its decoded data (a dict for a model), as a consumer would receive it.
        key: the ordering key it was published with, if any.
        group: the group a command was sent to; None for an event.
    """

    envelope: Envelope | None
    data: Any
    key: str | None
    group: str | None

    @property
    def type(self) -> str | None:
        """Its event type (``envelope.type``)."""
        return self.envelope.type if self.envelope else None

    @property
    def id(self) -> str | None:
        """Its event id (``envelope.id``)."""
        return self.envelope.id if self.envelope else None


class _RecordingTransport(MemoryTransport):
    def __init__(self, options: TransportOptions, owner: TestBus) -> None:
        super().__init__("memory://", options, broker=MemoryBroker())
        self._owner = owner

    async def publish(self, messages: Sequence[OutgoingMessage]) -> list[bool]:
        for m in messages:
            try:
                envelope, data = decode(
                    routing_key=m.type,
                    body=m.body,
                    content_type=m.content_type,
                    headers=m.headers,
                    message_id=m.id,
                )
            except DecodeError:
                envelope, data = None, m.body
            self._owner.published.append(PublishedMessage(envelope, data, m.key, m.group))
        return await super().publish(messages)

    async def dead_letter(self, delivery: Delivery, failure: Failure) -> None:
        await super().dead_letter(delivery, failure)
        queue = self.broker.queues.get(delivery.group)
        if queue and queue.dead:
            self._owner.dead_lettered.append(_to_public(queue.dead[-1]))


class TestBus:
    """Run `bus` on a private in-memory broker with a `ManualClock`.

    The bus is your production bus, unchanged: `TestBus` swaps its transport before it
    opens (so a ``sqlite:///`` URL writes no file), and the pipeline it runs is the real
    one: retries, dead letters, idempotency, middleware and the buffered publishing of
    `Context`. Back-off delays wait for the clock, which only moves when the test moves it.

    ``async with TestBus(bus)`` opens the bus (declaring its groups and starting its
    consumers) and closes it on exit; a bus is opened once, so build a new one per test.

    Args:
        bus: the bus under test; it must not have been opened.
        clock: the clock to use; a new `ManualClock` by default.
        database: the application's database for the outbox and inbox, instead of the
            bus's own (``"sqlite+aiosqlite:///:memory:"`` is a private temporary file,
            deleted on exit); ``bus.database`` is its engine, for the test's own sessions.

    Attributes:
        bus: the bus under test.
        clock: the clock; ``clock.advance(seconds)`` makes due retries available.
        published: every message published through the bus, in order (`PublishedMessage`).
        dead_lettered: every dead letter made, in order (`tidings.DeadLetter`).
        transport: the in-memory transport the bus runs on.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, bus: Bus, *, clock: ManualClock | None = None, database: Any = None) -> None:
        self.bus = bus
        self.clock = clock or ManualClock()
        self.published: list[PublishedMessage] = []
        self.dead_lettered: list[DeadLetter] = []
        options = TransportOptions(
            name=bus.name,
            lease=bus._options.lease,
            retention=bus._options.retention,
            max_message_size=bus.max_message_size,
            dedupe_ttl=bus._options.dedupe_ttl,
            clock=self.clock,
            on_unroutable=bus.on_unroutable,
        )
        self.transport = _RecordingTransport(options, self)
        bus.use_transport(self.transport)
        if database is not None:
            bus.use_database(database)

    async def __aenter__(self) -> Self:
        await self.bus.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.bus.close(drain_timeout=1.0)

    def published_types(self) -> list[str | None]:
        """The types of everything published so far, in order (events, commands and
        context publishes)."""
        return [p.type for p in self.published]

    async def drain(self, *, retries: bool = False, timeout: float = 10.0) -> None:
        """Wait until nothing is ready or in flight (and, on a bus with a ``database``,
        until the outbox has sent every committed message that is due).

        A retry waiting for its time is not ready: after ``drain()`` it is still scheduled.

        Args:
            retries: also move the clock to each scheduled retry (and delayed publish) in
                turn, until nothing is scheduled either.
            timeout: real seconds to wait at most, a guard against a handler that never
                returns (`TimeoutError`).
        """
        broker = self.transport.broker
        async with asyncio.timeout(timeout):
            while True:
                await self._settle(broker)
                if await self.bus._outbox.drain():
                    continue  # what the relay sent may be handled, and stage more
                if not broker.idle(self.clock.time()):
                    continue  # the relay's own pass (which drain waited for) sent some
                if not retries:
                    return
                pending = broker.next_available()
                if pending is None:
                    return
                self.clock.advance(max(0.0, pending - self.clock.time()))

    async def _settle(self, broker: MemoryBroker) -> None:
        while True:
            # Let consumer loops and handler tasks run until the broker stops changing.
            version = broker.version
            for _ in range(5):
                await asyncio.sleep(0)
            if broker.idle(self.clock.time()) and broker.version == version:
                return
            event = broker.watch()
            try:
                if broker.version == version and not broker.idle(self.clock.time()):
                    await event.wait()
            finally:
                broker.unwatch(event)
