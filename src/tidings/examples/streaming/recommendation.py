"""The recommendation service: learns a user's favourite genres from what they watch."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict

from tidings import Bus, Context

from ..plan import Settings
from .events import RecommendationUpdated, VideoWatchStarted

__all__ = ["GROUP", "attach"]

GROUP = "recommendation"


def attach(bus: Bus, settings: Settings) -> None:
    """Subscribe the recommendation service's handler to `bus`."""
    preferences: defaultdict[str, Counter[str]] = defaultdict(Counter)

    @bus.subscribe("video.watch_started", group=GROUP, idempotent=True)
    async def update_preferences(watch: VideoWatchStarted, ctx: Context) -> None:
        await asyncio.sleep(settings.seconds(0.01))  # the model update
        preferences[watch.user_id][watch.genre] += 1
        top = [genre for genre, _ in preferences[watch.user_id].most_common(3)]
        updated = RecommendationUpdated(
            watch_id=watch.watch_id, user_id=watch.user_id, top_genres=top
        )
        await ctx.publish(updated, key=watch.user_id)
