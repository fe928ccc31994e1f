"""What a transport reports about one group."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["GroupStats"]


@dataclass(frozen=True, slots=True)
class GroupStats:
    """What a transport can tell about one group (a durable subscription).

    `Bus.stats` returns one per group; ``tidings queues`` prints them.

    Attributes:
        group: the group's name.
        ready: deliveries waiting to be taken.
        in_flight: deliveries a consumer holds and has not settled.
        scheduled: deliveries waiting for a retry (or a delayed publish).
        dead: entries in the group's dead-letter queue.
        consumers: live consumers attached to the group.
        oldest_age: age in seconds of the oldest ready delivery (0 when none).
        publish_rate: deliveries routed to the group per second, recent average, or None
            when the transport cannot tell.
        ack_rate: deliveries acknowledged per second, recent average, or None.
        dead_recent: entries dead-lettered in the recent window (for the DLQ-growth rule),
            or None when the transport cannot tell.
        alerts: human-readable alert lines (filled in by `Bus.stats`; a transport leaves
            them empty): a backlog over the threshold, no consumers while messages wait,
            a publish rate over twice the ack rate, a growing dead-letter queue.
    """

    group: str
    ready: int = 0
    in_flight: int = 0
    scheduled: int = 0
    dead: int = 0
    consumers: int = 0
    oldest_age: float = 0.0
    publish_rate: float | None = None
    ack_rate: float | None = None
    dead_recent: int | None = None
    alerts: tuple[str, ...] = field(default=())
