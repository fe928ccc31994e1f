"""The inbox: a transactional handler's writes, its inbox row and what it publishes through its
context commit together; a duplicate delivery (the row exists, or a copy in flight at the same
time) has no second effect; a failure leaves nothing behind."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.outbox.app import (
    INBOX,
    ChargeCard,
    OrderPlaced,
    OrderShipped,
    Outcomes,
    count,
    create_app_tables,
    effects,
)
from tests.support import eventually
from tidings import Bus, ConfigError, Context, Retry, StateError
from tidings.testing import TestBus


def billing(outcomes: Outcomes, fail_first: bool = False, **options: Any) -> tuple[Bus, list[int]]:
    """A bus whose transactional handler records an effect and publishes a follow-up."""
    bus = Bus("memory://billing", middleware=[outcomes], **options)
    calls: list[int] = []

    @bus.subscribe("order.placed", group="billing", transactional=True, retry=Retry(attempts=3))
    async def bill(event: OrderPlaced, ctx: Context) -> None:
        calls.append(ctx.attempt)
        await ctx.session.execute(effects.insert().values(event_id=ctx.event_id, note="billed"))
        await ctx.publish(OrderShipped(order_id=event.order_id))
        await ctx.send(ChargeCard(order_id=event.order_id), to="payment")
        if fail_first and ctx.attempt == 1:
            raise RuntimeError("the first attempt fails after writing and publishing")

    @bus.subscribe("order.shipped", group="mail")
    async def mail(event: OrderShipped) -> None:
        return None

    @bus.subscribe("payment.charge", group="payment")
    async def charge(command: ChargeCard) -> None:
        return None

    return bus, calls


async def test_effects_inbox_row_and_publishes_commit_together(database: str) -> None:
    outcomes = Outcomes()
    bus, calls = billing(outcomes)
    async with TestBus(bus, database=database) as tb:
        await create_app_tables(bus.database)
        event_id = await bus.publish(OrderPlaced(order_id="o-1"))
        await tb.drain()
        assert await count(bus.database, effects, event_id=event_id) == 1
        assert await count(bus.database, INBOX, event_id=event_id, group_name="billing") == 1
        assert tb.published_types() == ["order.placed", "order.shipped", "payment.charge"]
        assert (await bus.outbox_stats()).idle


async def test_a_duplicate_whose_row_exists_is_acknowledged_without_running(database: str) -> None:
    outcomes = Outcomes()
    bus, calls = billing(outcomes)
    async with TestBus(bus, database=database) as tb:
        await create_app_tables(bus.database)
        event_id = await bus.publish(OrderPlaced(order_id="o-1"))
        await tb.drain()
        await bus.publish(OrderPlaced(order_id="o-1"), id=event_id)
        await tb.drain()
        assert outcomes.of(event_id) == ["ack", "duplicate"]
        assert calls == [1]
        assert await count(bus.database, effects, event_id=event_id) == 1
        assert tb.published_types().count("order.shipped") == 1


async def test_copies_in_flight_at_once_have_one_effect(database: str) -> None:
    outcomes = Outcomes()
    bus, calls = billing(outcomes)
    async with TestBus(bus, database=database) as tb:
        await create_app_tables(bus.database)
        ids = [f"event-{n}" for n in range(12)]
        for n, event_id in enumerate(ids):
            order = OrderPlaced(order_id=f"o-{n}")
            # Three copies of one event, published together: in flight at the same time.
            await asyncio.gather(*(bus.publish(order, id=event_id) for _ in range(3)))
        await tb.drain()
        for event_id in ids:
            assert outcomes.of(event_id) == ["ack", "duplicate", "duplicate"]
            assert await count(bus.database, effects, event_id=event_id) == 1
        assert len(calls) == 12
        assert tb.published_types().count("order.shipped") == 12


async def test_a_race_of_two_copies_runs_the_handler_once(database: str) -> None:
    """Both copies start before either commits: the second waits for the first's row."""
    started = asyncio.Event()
    release = asyncio.Event()
    runs: list[str] = []
    outcomes = Outcomes()
    bus = Bus("memory://race", middleware=[outcomes])

    @bus.subscribe("order.placed", group="billing", transactional=True)
    async def bill(event: OrderPlaced, ctx: Context) -> None:
        runs.append(ctx.event_id)
        await ctx.session.execute(effects.insert().values(event_id=ctx.event_id, note="x"))
        started.set()
        await release.wait()

    async with TestBus(bus, database=database) as tb:
        await create_app_tables(bus.database)
        event_id = await bus.publish(OrderPlaced(order_id="o-1"))
        await started.wait()
        await bus.publish(OrderPlaced(order_id="o-1"), id=event_id)
        await asyncio.sleep(0.2)  # let the second copy reach the inbox (it must wait there)
        release.set()
        await tb.drain()
        assert runs == [event_id]
        assert outcomes.of(event_id) == ["ack", "duplicate"]
        assert await count(bus.database, effects, event_id=event_id) == 1


async def test_a_failed_attempt_rolls_back_its_writes_and_its_publishes(database: str) -> None:
    outcomes = Outcomes()
    bus, calls = billing(outcomes, fail_first=True)
    async with TestBus(bus, database=database) as tb:
        await create_app_tables(bus.database)
        event_id = await bus.publish(OrderPlaced(order_id="o-1"))
        await tb.drain(retries=True)
        assert calls == [1, 2]
        assert outcomes.of(event_id) == ["ack", "retry"]
        assert await count(bus.database, effects, event_id=event_id) == 1
        assert await count(bus.database, INBOX, event_id=event_id) == 1
        assert tb.published_types() == ["order.placed", "order.shipped", "payment.charge"]


async def test_a_replayed_event_runs_again() -> None:
    outcomes = Outcomes()
    bus, calls = billing(outcomes)
    async with TestBus(bus, database="sqlite+aiosqlite:///:memory:") as tb:
        await create_app_tables(bus.database)
        event_id = await bus.publish(OrderPlaced(order_id="o-1"))
        await tb.drain()
        assert await bus.replay("billing", "1h") == 1
        await tb.drain()
        assert calls == [1, 1]
        assert await count(bus.database, effects, event_id=event_id) == 2
        assert await count(bus.database, INBOX, event_id=event_id) == 1


async def test_inbox_rows_expire_after_inbox_ttl() -> None:
    outcomes = Outcomes()
    bus, calls = billing(outcomes, inbox_ttl=600.0)
    async with TestBus(bus, database="sqlite+aiosqlite:///:memory:") as tb:
        await create_app_tables(bus.database)
        event_id = await bus.publish(OrderPlaced(order_id="o-1"))
        await tb.drain()
        assert await count(bus.database, INBOX) == 1
        tb.clock.advance(601.0)  # wakes the relay, whose housekeeping deletes expired rows

        async def expired() -> bool:
            return await count(bus.database, INBOX, event_id=event_id) == 0

        await eventually(expired, what="the inbox row to expire")
        # An expired row no longer absorbs a copy: it runs again.
        await bus.publish(OrderPlaced(order_id="o-1"), id=event_id)
        await tb.drain()
        assert calls == [1, 1]


async def test_ctx_session_outside_a_transactional_handler_raises() -> None:
    bus = Bus("memory://plain")
    errors: list[BaseException] = []

    @bus.subscribe("order.placed", group="plain")
    async def plain(event: OrderPlaced, ctx: Context) -> None:
        try:
            ctx.session  # noqa: B018
        except StateError as exc:
            errors.append(exc)

    async with TestBus(bus, database="sqlite+aiosqlite:///:memory:") as tb:
        await bus.publish(OrderPlaced(order_id="o-1"))
        await tb.drain()
    (error,) = errors
    assert "transactional=True" in str(error) and "'plain'" in str(error)


async def test_a_transactional_handler_needs_a_database() -> None:
    bus = Bus("memory://nodb")

    @bus.subscribe("order.placed", group="billing", transactional=True)
    async def bill(event: OrderPlaced, ctx: Context) -> None:
        return None

    with pytest.raises(ConfigError, match=r"'billing'.*Bus\(database=\.\.\.\)"):
        await bus.start()
    assert bus.state.value == "new"


async def test_the_handler_session_is_the_applications_database(database: str) -> None:
    bus = Bus("memory://shared")
    seen: list[int] = []

    @bus.subscribe("order.placed", group="billing", transactional=True)
    async def bill(event: OrderPlaced, ctx: Context) -> None:
        rows = await ctx.session.execute(effects.select())
        seen.append(len(rows.all()))

    async with TestBus(bus, database=database) as tb:
        await create_app_tables(bus.database)
        async with AsyncSession(bus.database) as session, session.begin():
            await session.execute(effects.insert().values(event_id="x", note="before"))
        await bus.publish(OrderPlaced(order_id="o-1"))
        await tb.drain()
    assert seen == [1]
