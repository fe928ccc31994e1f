"""Dedupe markers of the memory broker, expiring on the transport's clock."""

from __future__ import annotations

from ..._clock import Clock
from .._transport import DedupeStore
from ._broker import MemoryBroker

__all__ = ["MemoryDedupe"]


class MemoryDedupe(DedupeStore):
    """Markers kept in the broker (shared by the transports of one name)."""

    def __init__(self, broker: MemoryBroker, clock: Clock) -> None:
        self._broker = broker
        self._clock = clock

    async def seen(self, group: str, event_id: str) -> bool:
        expires = self._broker.markers.get((group, event_id))
        return expires is not None and expires > self._clock.time()

    async def mark(self, group: str, event_id: str, ttl: float) -> None:
        self._broker.markers[(group, event_id)] = self._clock.time() + ttl
