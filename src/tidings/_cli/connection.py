"""The bus a one-shot command (``health``, ``publish``, ``queues``, ``dlq``, ``replay``)
talks to the broker through."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .. import Bus

__all__ = ["connect"]


@asynccontextmanager
async def connect(url: str | None, name: str) -> AsyncIterator[Bus]:
    """An open publish-only bus (it starts no consumers) for a one-shot command."""
    bus = Bus(url, name=name, consume=False)
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()
