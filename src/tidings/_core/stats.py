"""The alert rules evaluated over group statistics."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..transports._stats import GroupStats

__all__ = ["AlertThresholds", "evaluate_alerts"]


@dataclass(frozen=True, slots=True)
class AlertThresholds:
    """Thresholds of the alert rules `evaluate_alerts` applies to group statistics.

    Attributes:
        backlog: ready messages over which a group is flagged as backlogged.
        min_rate: publish rate (per second) under which the rate rule stays quiet.
    """

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
