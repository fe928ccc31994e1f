"""A worker whose transactional handler bills each order in the application's database, run as
``python -m tidings run tests.outbox.worker_child:bus`` with, in the environment:
``OUTBOX_BROKER`` and ``OUTBOX_NAME`` (the broker and the bus name), ``OUTBOX_DB`` (the
application's database), ``OUTBOX_OUT`` (a directory) and, optionally, ``OUTBOX_HANG_ON``: an
order id whose handler writes its effect, says so in ``OUTBOX_OUT/in-handler`` and hangs
there, its transaction open, until the process is killed."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tests.outbox.app import OrderPlaced, effects
from tidings import Bus, Context

OUT = Path(os.environ["OUTBOX_OUT"])

bus = Bus(
    os.environ["OUTBOX_BROKER"],
    name=os.environ["OUTBOX_NAME"],
    database=os.environ["OUTBOX_DB"],
    lease=1.0,  # the embedded broker gives a dead worker's deliveries back after a second
)


@bus.subscribe("order.placed", group="billing", transactional=True, concurrency=4)
async def bill(event: OrderPlaced, ctx: Context) -> None:
    note = f"pid {os.getpid()}"
    await ctx.session.execute(effects.insert().values(event_id=ctx.event_id, note=note))
    if event.order_id == os.environ.get("OUTBOX_HANG_ON"):
        await ctx.session.flush()  # the effect is in the database, not committed
        (OUT / "in-handler").write_text(ctx.event_id)
        await asyncio.sleep(3600)  # killed here
