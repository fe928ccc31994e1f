"""The in-process memory transport (``memory://name``): tests and single-process tools."""

from __future__ import annotations

from ._transport import MemoryBroker, MemoryTransport

__all__ = ["MemoryBroker", "MemoryTransport"]
