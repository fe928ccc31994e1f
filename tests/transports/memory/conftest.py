"""Memory transports on one private broker name per test, on a `ManualClock`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tidings.testing import ManualClock
from tidings.transports import TransportOptions
from tidings.transports.memory import MemoryBroker, MemoryTransport

MakeTransport = Callable[..., Awaitable[MemoryTransport]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def memory(clock: ManualClock) -> AsyncIterator[MakeTransport]:
    """``await memory(**options)``: an opened transport on this test's ``memory://`` name
    (every one it makes shares the broker), closed after the test."""
    url = f"memory://unit-{uuid.uuid4().hex}"
    made: list[MemoryTransport] = []

    async def make(**options: Any) -> MemoryTransport:
        transport = MemoryTransport(url, TransportOptions(clock=clock, **options))
        await transport.open()
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.close()
    MemoryBroker.discard(url)
