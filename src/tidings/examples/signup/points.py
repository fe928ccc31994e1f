"""The points service: credits welcome points, exactly once per user, and answers what a
sign-up gets now (request/reply)."""

from __future__ import annotations

import asyncio

from tidings import Bus, Context

from ..plan import Settings
from .events import PointsAwarded, PointsQuoted, QuotePoints, UserCreated

__all__ = ["GROUP", "WELCOME_POINTS", "attach"]

GROUP = "points"
WELCOME_POINTS = 1000


def attach(bus: Bus, settings: Settings) -> None:
    """Subscribe the points service's handlers to `bus`."""

    @bus.subscribe("user.created", group=GROUP, idempotent=True)
    async def award(user: UserCreated, ctx: Context) -> None:
        await asyncio.sleep(settings.seconds(0.01))  # the points ledger
        awarded = PointsAwarded(user_id=user.user_id, points=WELCOME_POINTS)
        await ctx.publish(awarded, key=user.user_id)

    @bus.subscribe("points.quote", group=GROUP)
    async def quote(request: QuotePoints) -> PointsQuoted:
        return PointsQuoted(points=WELCOME_POINTS)
