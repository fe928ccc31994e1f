"""Queue statistics and the alert rules evaluated over them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

__all__ = ["AlertThresholds", "GroupStats", "evaluate_alerts"]


@dataclass(frozen=True, slots=True)
class GroupStats:
    """What a transport can tell about one group (a durable subscription).

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
        alerts: human-readable alert lines from `evaluate_alerts`.
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


@dataclass(frozen=True, slots=True)
class AlertThresholds:
    """Thresholds for the alert rules of the source material's monitoring section."""

    backlog: int = 1000
    min_rate: float = 1.0


def evaluate_alerts(stats: GroupStats, thresholds: AlertThresholds | None = None) -> GroupStats:
    """Return `stats` with its `alerts` filled in.

    Rules: backlog over a threshold; messages waiting with no consumer; publish rate above
    twice the acknowledge rate; dead-letter queue growing.
    """
    t = thresholds or AlertThresholds()
    alerts: list[str] = []
    if stats.ready > t.backlog:
        alerts.append(f"backlog: {stats.ready} ready, over the threshold of {t.backlog}")
    if stats.consumers == 0 and stats.ready > 0:
        alerts.append(f"no consumers while {stats.ready} messages wait")
    if (
        stats.publish_rate is not None
        and stats.ack_rate is not None
        and stats.publish_rate >= t.min_rate
        and stats.publish_rate > 2 * stats.ack_rate
    ):
        alerts.append(
            f"publish rate {stats.publish_rate:.1f}/s is over twice the ack rate "
            f"{stats.ack_rate:.1f}/s"
        )
    if stats.dead_recent:
        alerts.append(f"dead-letter queue growing: {stats.dead_recent} new in the last 5 minutes")
    return replace(stats, alerts=tuple(alerts))
