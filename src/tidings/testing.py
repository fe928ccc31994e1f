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
back-off delays wait for ``tb.clock.advance(seconds)`` instead of real time.
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
    """One message the bus published (events, commands and context publishes alike)."""

    envelope: Envelope | None
    data: Any
    key: str | None
    group: str | None

    @property
    def type(self) -> str | None:
        return self.envelope.type if self.envelope else None

    @property
    def id(self) -> str | None:
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

    Attributes:
        clock: the clock; ``clock.advance(seconds)`` makes due retries available.
        published: every message published through the bus, in order.
        dead_lettered: every dead letter made, in order.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, bus: Bus, *, clock: ManualClock | None = None) -> None:
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
        )
        self.transport = _RecordingTransport(options, self)
        bus.use_transport(self.transport)

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
        """Types of everything published, in order."""
        return [p.type for p in self.published]

    async def drain(self, *, retries: bool = False, timeout: float = 10.0) -> None:
        """Wait until nothing is ready or in flight.

        With ``retries=True`` also move the clock to each scheduled retry in turn until
        nothing is scheduled either. `timeout` (real seconds) guards against a handler that
        never returns.
        """
        broker = self.transport.broker
        async with asyncio.timeout(timeout):
            while True:
                await self._settle(broker)
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
