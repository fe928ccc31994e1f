"""The e-mail service: sends the welcome e-mail, slowly (about 2 s per message)."""

from __future__ import annotations

import asyncio

from tidings import Bus, Context, Retry

from ..plan import Settings
from .events import EmailSent, UserCreated

__all__ = ["GROUP", "SEND_SECONDS", "attach"]

GROUP = "email"
SEND_SECONDS = 2.0


def attach(bus: Bus, settings: Settings) -> None:
    """Subscribe the e-mail service's handler to `bus`."""

    @bus.subscribe(
        "user.created",
        group=GROUP,
        concurrency=4,  # the provider's rate limit: the backlog waits in the queue
        idempotent=True,
        retry=Retry(attempts=5, base=1.0, max_delay=30.0),
    )
    async def send_welcome(user: UserCreated, ctx: Context) -> None:
        await asyncio.sleep(settings.seconds(SEND_SECONDS))  # the SMTP round trip
        await ctx.publish(EmailSent(user_id=user.user_id, email=user.email), key=user.user_id)
