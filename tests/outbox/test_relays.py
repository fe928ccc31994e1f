"""Relays: several of them keep per-key order on PostgreSQL; a commit wakes a relay at once (in
the process, and through NOTIFY from another); a relay killed between the broker's confirm and
marking the rows sent leaves them to be sent again, and a transactional consumer's inbox
absorbs the copy."""

from __future__ import annotations

import asyncio
import random
import signal
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.outbox.app import (
    OUTBOX,
    OrderPlaced,
    Outcomes,
    count,
    create_app_tables,
    effects,
)
from tests.outbox.conftest import Broker
from tests.support import Children, eventually
from tidings import Bus, Context
from tidings.outbox import metadata
from tidings.transports import OutgoingMessage, split_options
from tidings.transports.memory import MemoryOptions, MemoryTransport

ROOT = Path(__file__).resolve().parents[2]


class Slow(MemoryTransport):
    """A memory broker with network latency: each publish takes up to 10 ms."""

    async def publish(self, messages: Sequence[OutgoingMessage]) -> list[bool]:
        await asyncio.sleep(random.uniform(0.0, 0.01))
        return await super().publish(messages)


def slow_transport(url: str, options: Mapping[str, Any]) -> Slow:
    common, _ = split_options(options, MemoryOptions, transport="memory")
    return Slow(url, common)


@pytest.mark.postgres
async def test_three_relays_keep_per_key_order(postgres: str) -> None:
    keys, per_key, rounds_per_commit = 100, 100, 10
    broker = f"memory://relays-{uuid.uuid4().hex[:8]}"
    received: dict[str, list[int]] = defaultdict(list)
    consumer = Bus(broker)

    @consumer.subscribe("order.placed", group="shipping", ordered=True, concurrency=64)
    async def ship(event: OrderPlaced, ctx: Context) -> None:
        assert ctx.key is not None
        received[ctx.key].append(event.seq)

    relays = [
        Bus(broker, database=postgres, consume=False, transport=slow_transport) for _ in range(3)
    ]
    async with consumer:
        for relay in relays:
            await relay.start()
        try:
            # Staged while the three relays run, a few rounds of every key per transaction:
            # each commit wakes all three (one in its process, two through NOTIFY).
            stager = relays[0]
            for first in range(0, per_key, rounds_per_commit):
                async with AsyncSession(stager.database) as session, session.begin():
                    for seq in range(first, first + rounds_per_commit):
                        for k in range(keys):
                            order = OrderPlaced(order_id=f"k{k}-{seq}", seq=seq)
                            await stager.publish(order, key=f"k{k}", session=session)
            await eventually(
                lambda: sum(map(len, received.values())) >= keys * per_key,
                timeout=30,
                what="every row delivered",
            )

            # A row is marked sent after its confirm: the consumer may have it a moment
            # before the relay has marked it.
            async def idle() -> bool:
                return (await stager.outbox_stats()).idle

            await eventually(idle, timeout=10, what="every row marked sent")
        finally:
            for relay in relays:
                await relay.close()
    assert received == {f"k{k}": list(range(per_key)) for k in range(keys)}


async def test_a_commit_wakes_the_relay_at_once(database: str) -> None:
    """The relay polls once a minute here: only a wake-up delivers within the test's time.
    On SQLite the commit is in the relay's process; on PostgreSQL another bus (standing for
    another process) commits, and NOTIFY wakes the relay."""
    broker = f"memory://wake-{uuid.uuid4().hex[:8]}"
    received: list[str] = []
    relay = Bus(broker, database=database, outbox_poll=60.0)

    @relay.subscribe("order.placed", group="shipping")
    async def ship(event: OrderPlaced) -> None:
        received.append(event.order_id)

    postgres = database.startswith("postgresql")
    stager = Bus(broker, database=database) if postgres else relay
    async with relay:
        for n in range(2):
            if n:
                await asyncio.sleep(0.5)  # the relay is asleep again, its listener connected
            async with AsyncSession(stager.database) as session, session.begin():
                await stager.publish(OrderPlaced(order_id=f"o-{n}"), session=session)
            await eventually(lambda n=n: len(received) > n, timeout=10, what=f"event {n}")
    await stager.close()
    assert received == ["o-0", "o-1"]


@pytest.mark.postgres
async def test_notify_survives_a_rolled_back_savepoint(postgres: str) -> None:
    """One notification a transaction: a savepoint that staged (and notified) and rolled back
    takes its notification with it, and what the transaction stages after notifies again."""
    broker = f"memory://savepoint-{uuid.uuid4().hex[:8]}"
    received: list[str] = []
    relay = Bus(broker, database=postgres, outbox_poll=60.0)

    @relay.subscribe("order.placed", group="shipping")
    async def ship(event: OrderPlaced) -> None:
        received.append(event.order_id)

    stager = Bus(broker, database=postgres)
    async with relay:
        await asyncio.sleep(0.5)  # the relay is asleep, its listener connected
        async with AsyncSession(stager.database) as session, session.begin():
            savepoint = await session.begin_nested()
            await stager.publish(OrderPlaced(order_id="undone"), session=session)
            await savepoint.rollback()
            for n in range(3):
                await stager.publish(OrderPlaced(order_id=f"kept-{n}"), session=session)
        await eventually(lambda: len(received) == 3, timeout=10, what="the kept events")
    await stager.close()
    assert received == ["kept-0", "kept-1", "kept-2"]


async def test_a_relay_killed_after_the_confirm_sends_again_and_the_inbox_absorbs_it(
    shared_broker: Broker, database: str, children: Children
) -> None:
    broker = shared_broker
    outcomes = Outcomes()
    worker = Bus(
        broker.url, database=database, middleware=[outcomes], outbox_poll=0.2, **broker.options
    )

    @worker.subscribe("order.placed", group="billing", transactional=True)
    async def bill(event: OrderPlaced, ctx: Context) -> None:
        await ctx.session.execute(effects.insert().values(event_id=ctx.event_id, note="billed"))

    # Given the billing group on the broker, and an event committed in the outbox
    async with Bus(broker.url, consume=False, **broker.options) as declarer:
        await declarer.transport.declare([g.spec() for g in worker.groups.values()])
    stager = Bus(broker.url, database=database, **broker.options)
    async with stager.database.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await create_app_tables(stager.database)
    async with AsyncSession(stager.database) as session, session.begin():
        event_id = await stager.publish(OrderPlaced(order_id="o-1"), session=session)
    # When a relay publishes it and dies before marking it sent
    child = children.start(
        "python", "-m", "tests.outbox.relay_child", broker.url, database, broker.name, cwd=ROOT
    )
    status = await asyncio.to_thread(child.wait, 60)
    assert status == -signal.SIGKILL, child.log
    async with stager.database.connect() as conn:
        (state,) = (await conn.execute(select(OUTBOX.c.state))).scalars().all()
    assert state == "pending"
    await stager.close()
    # Then another relay sends it again once the lease ends; the inbox absorbs the copy
    async with worker:
        await eventually(
            lambda: outcomes.of(event_id) == ["ack", "duplicate"],
            timeout=20,
            what="the first delivery and its copy",
        )

        async def sent() -> bool:
            return (await worker.outbox_stats()).idle

        await eventually(sent, what="the row marked sent")
        assert await count(worker.database, effects, event_id=event_id) == 1
