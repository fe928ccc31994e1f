"""`OutboxSettings`: how a bus's relay and inbox behave (from the `Bus` options)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OutboxSettings"]


@dataclass(frozen=True, slots=True)
class OutboxSettings:
    """The outbox and inbox options of one bus.

    Attributes:
        retention: seconds a sent row stays in the outbox before it is deleted.
        attempts: failed publishes of one row (other than a broker that is down or a full
            group, which are retried without counting) before it becomes dead.
        inbox_ttl: seconds an inbox row is kept; a duplicate delivered later runs again.
        poll: seconds between two looks at the outbox when nothing wakes the relay.
        lease: seconds a relay holds the rows it claimed; a relay that dies holding rows
            gives them back when their lease ends, and another relay sends them again.
        create_tables: create the tables on start when they do not exist (False for
            applications that run the shipped Alembic migrations).
        batch: most rows claimed and published at once.
    """

    retention: float = 3600.0
    attempts: int = 10
    inbox_ttl: float = 7 * 24 * 3600.0
    poll: float = 1.0
    lease: float = 30.0
    create_tables: bool = True
    batch: int = 200
