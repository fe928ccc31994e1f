"""The notification service: one group, two event types, a handler for each."""

from __future__ import annotations

import asyncio

from tidings import Bus, Context

from ..plan import Settings
from .events import NotificationSent, RecommendationUpdated, VideoWatchStarted

__all__ = ["GROUP", "attach"]

GROUP = "notification"


def attach(bus: Bus, settings: Settings) -> None:
    """Subscribe the notification service's handlers to `bus`."""

    @bus.subscribe("video.watch_started", group=GROUP)
    async def on_watch(watch: VideoWatchStarted, ctx: Context) -> None:
        await asyncio.sleep(settings.seconds(0.005))  # "your friends watch this too"
        sent = NotificationSent(watch_id=watch.watch_id, user_id=watch.user_id, kind="watch")
        await ctx.publish(sent, key=watch.user_id)

    @bus.subscribe("recommendation.updated", group=GROUP)
    async def on_recommendation(update: RecommendationUpdated, ctx: Context) -> None:
        await asyncio.sleep(settings.seconds(0.005))  # "new picks for you"
        sent = NotificationSent(
            watch_id=update.watch_id, user_id=update.user_id, kind="recommendation"
        )
        await ctx.publish(sent, key=update.user_id)
