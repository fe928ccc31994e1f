"""Options of the memory transport: it takes none beyond the common ones."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MemoryOptions"]


@dataclass(frozen=True, slots=True)
class MemoryOptions:
    """The memory transport's own options: none. It exists so that a keyword the memory
    transport does not take (``Bus("memory://x", partitons=8)``) is refused, as on every
    other transport, rather than ignored."""
