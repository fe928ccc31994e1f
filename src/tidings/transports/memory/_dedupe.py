"""Dedupe claims and markers of the memory broker, expiring on the transport's clock."""

from __future__ import annotations

from ..._clock import Clock
from .._transport import Claimed, DedupeStore
from ._broker import MemoryBroker

__all__ = ["MemoryDedupe"]


class MemoryDedupe(DedupeStore):
    """Claims and "done" markers kept in the broker, so every transport of one name (every
    bus on ``memory://NAME`` in the process) sees the same ones.

    Each method runs without yielding to the event loop, so a claim is atomic: of two copies
    of one event in flight at once, exactly one gets ``"claimed"``.
    """

    def __init__(self, broker: MemoryBroker, clock: Clock) -> None:
        self._broker = broker
        self._clock = clock

    def _live(self, table: dict[tuple[str, str], float], key: tuple[str, str]) -> bool:
        expires = table.get(key)
        if expires is None:
            return False
        if expires > self._clock.time():
            return True
        del table[key]  # expired: free again
        return False

    async def seen(self, group: str, event_id: str) -> bool:
        return self._live(self._broker.markers, (group, event_id))

    async def mark(self, group: str, event_id: str, ttl: float) -> None:
        self._broker.markers[(group, event_id)] = self._clock.time() + ttl

    async def claim(self, group: str, event_id: str, lease: float) -> Claimed:
        key = (group, event_id)
        if self._live(self._broker.markers, key):
            return "done"
        if self._live(self._broker.claims, key):
            return "busy"
        self._broker.claims[key] = self._clock.time() + lease
        return "claimed"

    async def complete(self, group: str, event_id: str, ttl: float) -> None:
        key = (group, event_id)
        self._broker.claims.pop(key, None)
        self._broker.markers[key] = self._clock.time() + ttl

    async def release(self, group: str, event_id: str) -> None:
        # Only the claim goes: a "done" marker stays (a replayed copy that failed must not
        # make the event look unprocessed).
        self._broker.claims.pop((group, event_id), None)

    async def renew(self, group: str, event_id: str, lease: float) -> None:
        key = (group, event_id)
        if self._live(self._broker.claims, key):
            self._broker.claims[key] = self._clock.time() + lease
