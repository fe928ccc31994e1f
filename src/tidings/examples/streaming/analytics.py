"""The analytics service: records every ``video.*`` event, and fails 30 % of the time.

The failure is decided per watch and per attempt by `tidings.examples.plan`, so a watch
may fail once and succeed on its retry, or fail all three attempts and land in the
group's dead-letter queue; the other groups never notice.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tidings import Bus, Context, Retry

from ..plan import Settings, happens
from .events import AnalyticsRecorded

__all__ = ["ATTEMPTS", "FAILURE_SHARE", "GROUP", "AnalyticsDown", "attach", "fails"]

GROUP = "analytics"
FAILURE_SHARE = 0.30
ATTEMPTS = 3


class AnalyticsDown(Exception):
    """The (simulated) analytics store refused a write."""


def fails(seed: int, watch_id: str, attempt: int) -> bool:
    """Whether attempt number `attempt` at recording `watch_id` fails."""
    return happens(FAILURE_SHARE, seed, "analytics", watch_id, attempt)


def attach(bus: Bus, settings: Settings) -> None:
    """Subscribe the analytics service's handler to `bus`."""

    @bus.subscribe("video.*", group=GROUP, retry=Retry(attempts=ATTEMPTS, base=0.05, max_delay=0.5))
    async def record(event: dict[str, Any], ctx: Context) -> None:
        await asyncio.sleep(settings.seconds(0.005))
        watch_id = str(event["watch_id"])
        if fails(settings.seed, watch_id, ctx.attempt):
            raise AnalyticsDown(f"analytics store refused {watch_id} (attempt {ctx.attempt})")
        recorded = AnalyticsRecorded(watch_id=watch_id, event_type=ctx.envelope.type)
        await ctx.publish(recorded, key=watch_id)
