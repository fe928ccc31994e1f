"""`OutboxStats`: the outbox of one bus at a glance (what ``tidings queues`` shows)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OutboxStats"]


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """The outbox of one bus, as `Bus.outbox_stats` returns it.

    Attributes:
        pending: committed messages the relay has not sent yet (waiting, in flight, or
            backing off after a failure).
        dead: messages the relay gave up on (unroutable, or failing ``outbox_attempts``
            times); they stay in the outbox, with the reason, until retried or purged.
        oldest_age: age in seconds of the oldest pending message (0 when none).
    """

    pending: int
    dead: int
    oldest_age: float

    @property
    def idle(self) -> bool:
        """True when nothing waits to be sent."""
        return self.pending == 0
