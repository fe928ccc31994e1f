"""The saga engine on the bus: instances in the application's database (SQLite and
PostgreSQL), transitions with optimistic concurrency, start and missing-instance rules,
durable timeouts on the test clock, invalid stored state, completion and its metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from tests.sagas.app import (
    Added,
    Close,
    Reminder,
    SagaCounts,
    Tally,
    TallyOpened,
    data_of,
)
from tidings import Bus, ConfigError, Retry
from tidings.outbox import metadata
from tidings.sagas import Saga, SagaContext, get_instance, list_instances, start
from tidings.testing import TestBus

SAGAS = metadata.tables["tidings_sagas"]


def tally_bus(database: str, **options: Any) -> Bus:
    bus = Bus("memory://", database=database, on_unroutable="ignore", **options)
    bus.add_saga(Tally, retry=Retry(attempts=3))
    return bus


async def test_events_drive_one_instance_to_completion(database: str) -> None:
    counts = SagaCounts()
    bus = Bus("memory://", database=database, on_unroutable="ignore", middleware=[counts])
    bus.add_saga(Tally)
    async with TestBus(bus) as tb:
        await bus.publish(TallyOpened(tally="t-1"))
        await tb.drain()
        await bus.publish(Added(tally="t-1", n=2))
        await tb.drain()
        await bus.publish(Added(tally="t-1", n=3))
        await tb.drain()
        await bus.send(Close(tally="t-1"), to="tally")
        await tb.drain()
        # further events for a completed instance are ignored
        await bus.publish(Added(tally="t-1", n=100))
        await tb.drain()
        instance = await get_instance(bus.database, "tally", "t-1", bus=bus.name)

    assert data_of(tb.published, "tally.closed") == [{"tally": "t-1", "total": 5}]
    assert instance is not None
    assert instance.status == "closed" and instance.completed
    assert instance.state["total"] == 5 and instance.state["seen"] == [2, 3]
    assert instance.timeouts == {}  # completing dropped the pending reminder
    assert [h["event"] for h in instance.history] == [
        "tally.opened", "tally.added", "tally.added", "tally.close",
    ]  # fmt: skip
    assert instance.history[-1]["from"] == "open" and instance.history[-1]["to"] == "closed"
    assert tb.dead_lettered == []
    assert [(name, status) for name, status, _ in counts.completed] == [("tally", "closed")]


async def test_concurrent_events_for_one_instance_give_the_serial_result(
    database: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given an open tally, and 50 additions delivered at once (16 handlers in flight)
    bus = tally_bus(database)
    caplog.set_level("DEBUG", logger="tidings.sagas._runner")
    async with TestBus(bus) as tb:
        await bus.publish(TallyOpened(tally="t-1"))
        await tb.drain()
        await bus.publish_many(Added(tally="t-1", n=n) for n in range(1, 51))
        await tb.drain(retries=True)  # (which also runs the reminder, 15 minutes later)
        instance = await get_instance(bus.database, "tally", "t-1", bus=bus.name)

    # Then every addition counts once: no lost update, nothing dead-lettered
    assert instance is not None
    assert instance.state["total"] == sum(range(1, 51))
    assert sorted(instance.state["seen"]) == list(range(1, 51))
    assert instance.version == 1 + 50 + 1  # opened, 50 additions, the reminder
    assert len(instance.history) == 50  # the last 50 transitions
    assert tb.dead_lettered == []
    if "postgres" in database:
        # transitions did race (and were computed again), on the one row
        assert "conflict" in caplog.text


async def test_racing_start_events_make_one_instance_and_run_once(database: str) -> None:
    # Given start events published twice each, with different ids, for 12 tallies at once
    bus = tally_bus(database)
    keys = [f"t-{n}" for n in range(12)]
    async with TestBus(bus) as tb:
        await bus.publish_many([TallyOpened(tally=k) for k in keys for _ in range(2)])
        await tb.drain()
        instances = await list_instances(bus.database, "tally", bus=bus.name)

    # Then each tally has one instance, whose start step ran once (one reminder scheduled)
    assert sorted(i.key for i in instances) == sorted(keys)
    assert all(i.version == 1 and len(i.timeouts) == 1 for i in instances)
    assert [p.type for p in tb.published].count("tally.remind") == len(keys)
    assert tb.dead_lettered == []


async def test_a_timeout_fires_on_the_test_clock_and_a_cancelled_one_never(
    database: str,
) -> None:
    bus = tally_bus(database)
    async with TestBus(bus) as tb:
        await bus.publish(TallyOpened(tally="kept"))
        await bus.publish(TallyOpened(tally="cancelled"))
        await tb.drain()
        await bus.publish(Added(tally="cancelled", n=-1))  # cancels its reminder
        await tb.drain()
        # 14 minutes in, nothing is due
        tb.clock.advance(14 * 60)
        await tb.drain()
        assert data_of(tb.published, "tally.reminded") == []
        # at 15 minutes the kept reminder fires; the cancelled one comes back and is ignored
        tb.clock.advance(60)
        await tb.drain()
        kept = await get_instance(bus.database, "tally", "kept", bus=bus.name)
        cancelled = await get_instance(bus.database, "tally", "cancelled", bus=bus.name)

    assert data_of(tb.published, "tally.reminded") == [{"tally": "kept", "note": ""}]
    assert kept is not None and kept.status == "reminded" and kept.timeouts == {}
    assert cancelled is not None and cancelled.status == "open"
    assert [h["event"] for h in cancelled.history] == ["tally.opened", "tally.added"]
    assert tb.dead_lettered == []


async def test_a_stale_timeout_is_ignored(database: str) -> None:
    # Given a reminder sent by hand with no token pending, and one for a completed tally
    bus = tally_bus(database)
    async with TestBus(bus) as tb:
        await bus.publish(TallyOpened(tally="t-1"))
        await tb.drain()
        await bus.send(Close(tally="t-1"), to="tally")
        await tb.drain()
        tb.clock.advance(15 * 60)
        await tb.drain()
        instance = await get_instance(bus.database, "tally", "t-1", bus=bus.name)

    # Then the reminder that came back after completion did nothing
    assert data_of(tb.published, "tally.reminded") == []
    assert instance is not None and instance.status == "closed"
    assert tb.dead_lettered == []


@pytest.mark.parametrize("on_missing", ["ignore", "dead_letter"])
async def test_an_event_for_a_missing_instance(database: str, on_missing: str) -> None:
    bus = Bus("memory://", database=database, on_unroutable="ignore")
    bus.add_saga(Tally, on_missing=on_missing)  # type: ignore[arg-type]
    async with TestBus(bus) as tb:
        await bus.publish(Added(tally="nobody", n=1))
        await tb.drain()
        instances = await list_instances(bus.database, "tally", bus=bus.name)

    assert instances == []
    if on_missing == "ignore":
        assert tb.dead_lettered == []
    else:
        [dead] = tb.dead_lettered
        assert dead.type == "tally.added" and dead.attempts == 1
        assert "no instance 'nobody'" in dead.reason


async def test_a_stored_state_that_does_not_validate_dead_letters_the_event(
    database: str,
) -> None:
    bus = tally_bus(database)
    async with TestBus(bus) as tb:
        await bus.publish(TallyOpened(tally="t-1"))
        await tb.drain()
        # an older release stored something this one cannot read
        async with bus.database.begin() as conn:
            await conn.execute(update(SAGAS).values(state='{"total": "many"}'))
        await bus.publish(Added(tally="t-1", n=1))
        await tb.drain()

    [dead] = tb.dead_lettered
    assert dead.type == "tally.added" and dead.attempts == 1
    assert "stored state of saga 'tally' 't-1' is invalid" in dead.reason
    assert "total" in dead.reason


async def test_completed_instances_are_deleted_after_the_retention(database: str) -> None:
    bus = tally_bus(database, saga_retention=3600.0)
    async with TestBus(bus) as tb:
        await bus.publish_many([TallyOpened(tally="done"), TallyOpened(tally="open")])
        await tb.drain()
        await bus.send(Close(tally="done"), to="tally")
        await tb.drain()
        tb.clock.advance(3601)  # the housekeeping wakes on the test clock

        async def left() -> list[str]:
            return [i.key for i in await list_instances(bus.database, "tally", bus=bus.name)]

        for _ in range(200):
            if await left() == ["open"]:
                break
            await asyncio.sleep(0.01)
        assert await left() == ["open"]


async def test_add_saga_refuses_what_cannot_run(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="needs the application's database"):
        Bus("memory://").add_saga(Tally)

    class NoDefault(Saga):
        order_id: str

        @start("x.started", key="order_id")
        async def started(self, event: TallyOpened, ctx: SagaContext) -> None: ...

    bus = Bus("memory://", database=f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    with pytest.raises(ConfigError, match="needs a default.*order_id"):
        bus.add_saga(NoDefault)

    class NoStart(Saga):
        total: int = 0

    with pytest.raises(ConfigError, match="no @start step"):
        bus.add_saga(NoStart)
    bus.add_saga(Tally)
    with pytest.raises(ConfigError, match="a group of that name exists"):
        bus.add_saga(Tally)
    assert "tally" in bus.groups
    await bus.close()


async def test_state_survives_a_restart_and_the_reminder_fires_after_it(tmp_path: Any) -> None:
    # Given an embedded broker and a database file, and a tally opened by a first worker
    # whose reminder is due in one second
    broker = f"sqlite:///{tmp_path / 'broker.db'}"
    database = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"

    class Quick(Tally, name="quick"):
        @start("tally.opened", key=lambda e: e.tally)
        async def opened(self, event: TallyOpened, ctx: SagaContext) -> None:
            self.reminder = await ctx.schedule(Reminder(tally=event.tally, note="late"), after=1)

    def worker() -> Bus:
        bus = Bus(broker, database=database, on_unroutable="ignore")
        bus.add_saga(Quick)
        return bus

    first = worker()
    async with first:
        await first.publish(TallyOpened(tally="t-1"))
        for _ in range(500):
            found = await get_instance(first.database, "quick", "t-1", bus=first.name)
            if found is not None and (await first.outbox_stats()).idle:
                break
            await asyncio.sleep(0.01)
    # When it stops before the reminder is due, and a second worker starts
    engine = create_async_engine(database)
    try:
        second = worker()
        async with second:
            for _ in range(1000):
                found = await get_instance(engine, "quick", "t-1")
                if found is not None and found.status == "reminded":
                    break
                await asyncio.sleep(0.01)
    finally:
        await engine.dispose()
    # Then the second worker ran the reminder
    assert found is not None and found.status == "reminded" and found.timeouts == {}
    assert [h["event"] for h in found.history] == ["tally.opened", "tally.remind"]
