"""Contract: delivery semantics under races and restarts — claims, durable ordered attempts,
all-or-nothing batches, bounded groups."""

from __future__ import annotations

__all__ = ["BatchContract", "BoundContract", "ClaimContract", "DurableOrderContract"]


class ClaimContract:
    """Concurrent copies of one event id run an idempotent handler once."""


class DurableOrderContract:
    """An ordered event waiting for its retry keeps its attempt count across a restart."""


class BatchContract:
    """A batch with an unroutable event: stored whole or not at all, or the ids that went."""


class BoundContract:
    """``max_ready``: a publish past the bound raises `QueueFull`; retries are kept."""
