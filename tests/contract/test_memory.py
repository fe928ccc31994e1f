"""The contract suite on ``memory://``: a fresh private broker per test, on a `ManualClock`."""

import asyncio
import uuid

import pytest

from tidings.contract import BusContract, Harness, TransportContract
from tidings.testing import ManualClock
from tidings.transports.memory import MemoryBroker

HORIZON = 60.0
"""Retries due within this many simulated seconds happen on their own while a test waits;
longer back-offs (the contract uses an hour) wait for an explicit `advance`."""


class MemoryHarness(Harness):
    """Waiting moves the clock: when nothing is ready or in flight, jump to the next
    scheduled delivery (if it is due within `HORIZON`), as real time would pass it."""

    def __init__(self) -> None:
        super().__init__(f"memory://contract-{uuid.uuid4().hex}", clock=ManualClock())
        self.broker = MemoryBroker.shared(self.url)

    async def tick(self) -> None:
        assert isinstance(self.clock, ManualClock)
        now = self.clock.time()
        due = self.broker.next_available()
        if self.broker.idle(now) and due is not None and now < due <= now + HORIZON:
            self.clock.advance(due - now)
        await asyncio.sleep(0.002)

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            MemoryBroker.discard(self.url)


@pytest.fixture
async def harness():
    async with MemoryHarness() as h:
        yield h


class TestMemoryBus(BusContract):
    pass


class TestMemoryTransport(TransportContract):
    pass
