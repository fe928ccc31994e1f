"""A broker that is down for 30 seconds: committed rows wait in the outbox, uncounted, while the
relay tries again with a growing back-off; when the broker is back they all leave, once each,
in the order of their key.

The outage is 30 seconds of the relay's clock, a `ManualClock` the test moves half a second at
a time, so the test takes a second or two of real time. The broker is the memory transport,
down (raising `BrokerUnavailable`, as every transport reports a broker it cannot reach) until
the clock reaches the end of the outage.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tests.outbox.app import OrderPlaced
from tests.support import eventually
from tidings import BrokerUnavailable, Bus, Context
from tidings.testing import ManualClock
from tidings.transports import OutgoingMessage, split_options
from tidings.transports.memory import MemoryOptions, MemoryTransport

OUTAGE = 30.0
STEP = 0.5
MAX_DOWN_WAIT = 5.0  # the relay's longest wait between two tries while the broker is down


class RelayClock(ManualClock):
    """A manual clock that counts the times the relay went to sleep on it, so the test knows
    when the relay has done what a move of the clock made due."""

    relay_sleeps = 0

    async def sleep_until(self, deadline: float, wake: asyncio.Event) -> None:
        task = asyncio.current_task()
        if task is not None and task.get_name() == "tidings-relay":
            self.relay_sleeps += 1
        await super().sleep_until(deadline, wake)


class Outage(MemoryTransport):
    """A memory broker that is down until its clock reaches `up_at`."""

    up_at = math.inf
    tries = 0

    async def publish(self, messages: Sequence[OutgoingMessage]) -> list[bool]:
        Outage.tries += 1
        if self.options.clock.time() < Outage.up_at:
            raise BrokerUnavailable("connection refused (the broker is down for the test)")
        return await super().publish(messages)


def outage_transport(url: str, options: Mapping[str, Any]) -> Outage:
    common, _ = split_options(options, MemoryOptions, transport="memory")
    return Outage(url, common)


async def move(clock: RelayClock, seconds: float) -> None:
    """Move the relay's clock by `seconds` and wait until the relay is asleep again."""
    before = clock.relay_sleeps
    clock.advance(seconds)
    await eventually(lambda: clock.relay_sleeps > before, what="the relay to act on the time")


async def test_rows_wait_through_a_30_second_outage_and_drain_after_it(database: str) -> None:
    clock = RelayClock()
    Outage.up_at, Outage.tries = clock.time() + OUTAGE, 0
    received: list[tuple[str, int]] = []
    bus = Bus(
        "memory://outage",
        database=database,
        transport=outage_transport,
        clock=clock,
        outbox_attempts=2,  # an outage counts no attempt: nothing dies of it
    )

    @bus.subscribe("order.placed", group="shipping", ordered=True)
    async def ship(event: OrderPlaced, ctx: Context) -> None:
        assert ctx.key is not None
        received.append((ctx.key, event.seq))

    async with bus:
        # Given a broker that is down, and rows committed in three transactions
        for key in "abc":
            async with AsyncSession(bus.database) as session, session.begin():
                for seq in range(10):
                    order = OrderPlaced(order_id=f"{key}-{seq}", seq=seq)
                    await bus.publish(order, key=key, session=session)
        await eventually(lambda: Outage.tries >= 1, what="the relay to try the broker")

        # When the outage lasts 30 seconds of the relay's time
        while clock.time() + STEP < Outage.up_at:
            await move(clock, STEP)
            stats = await bus.outbox_stats()
            assert (stats.pending, stats.dead) == (30, 0)
        tries_while_down = Outage.tries

        # Then the rows waited, none sent, none dead, the oldest as old as the outage, and
        # the relay kept trying, backing off (60 moves of the clock, far fewer tries)
        assert received == []
        assert (await bus.outbox_stats()).oldest_age >= OUTAGE - STEP
        assert 5 <= tries_while_down <= 20

        # And once the broker is back, every row leaves, once, in the order of its key
        # (within its longest wait between two tries)
        while (await bus.outbox_stats()).pending:
            assert clock.time() <= Outage.up_at + MAX_DOWN_WAIT, "the relay did not come back"
            await move(clock, STEP)
        await eventually(lambda: len(received) == 30, what="the deliveries")
        assert (await bus.outbox_stats()).dead == 0
    by_key: dict[str, list[int]] = {}
    for key, seq in received:
        by_key.setdefault(key, []).append(seq)
    assert by_key == {key: list(range(10)) for key in "abc"}
