"""The outbox: messages staged in the application's transaction leave only if it commits, once
each, through the relay of a started bus; what the relay cannot send waits or becomes dead
without holding back other keys."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from tests.outbox.app import OUTBOX, ChargeCard, Nobody, OrderPlaced, OrderShipped
from tests.outbox.conftest import Broker
from tests.support import eventually
from tidings import BrokerUnavailable, Bus, ConfigError, Context, Middleware
from tidings.testing import ManualClock
from tidings.transports import OutgoingMessage, split_options
from tidings.transports.memory import MemoryOptions, MemoryTransport


def shop(url: str, received: list[tuple[str, Any]], **options: Any) -> Bus:
    bus = Bus(url, outbox_poll=0.2, **options)

    @bus.subscribe("order.placed", group="shipping")
    async def ship(event: OrderPlaced, ctx: Context) -> None:
        received.append((ctx.event_id, event))

    @bus.subscribe("payment.charge", group="payment")
    async def charge(command: ChargeCard, ctx: Context) -> None:
        received.append((ctx.event_id, command))

    return bus


async def settled(bus: Bus) -> bool:
    """Nothing pending in the outbox, nothing ready or in flight in any group."""
    if not (await bus.outbox_stats()).idle:
        return False
    return all(s.ready == 0 and s.in_flight == 0 for s in await bus.stats())


async def rows(bus: Bus, *columns: str) -> list[tuple[Any, ...]]:
    query = select(*(OUTBOX.c[c] for c in columns)).order_by(OUTBOX.c.id)
    async with bus.database.connect() as conn:
        return [tuple(r) for r in await conn.execute(query)]


async def test_a_rollback_sends_nothing_and_a_commit_sends_each_message_once(
    database: str, broker: Broker
) -> None:
    received: list[tuple[str, Any]] = []
    bus = shop(broker.url, received, database=database, **broker.options)
    async with bus:
        # Given a transaction that stages an event and rolls back
        async with AsyncSession(bus.database) as session:
            lost = await bus.publish(OrderPlaced(order_id="lost"), session=session)
            await session.rollback()
        # When another one commits an event, a command and a batch
        async with AsyncSession(bus.database) as session, session.begin():
            one = await bus.publish(OrderPlaced(order_id="o-1"), key="o-1", session=session)
            cmd = await bus.send(ChargeCard(order_id="o-1"), to="payment", session=session)
            many = await bus.publish_many(
                [OrderPlaced(order_id="o-2"), OrderPlaced(order_id="o-3")], session=session
            )
        # Then each committed message arrives exactly once, and the rolled-back one never
        await eventually(lambda: len(received) >= 4, what="the committed messages")
        await eventually(lambda: settled(bus), timeout=20, what="outbox and groups settled")
        ids = Counter(event_id for event_id, _ in received)
        assert ids == Counter([one, cmd, *many])
        assert lost not in ids
        assert [state for (state,) in await rows(bus, "state")] == ["sent"] * 4


async def test_a_sync_session_stages_with_bus_stage(tmp_path: Path) -> None:
    received: list[tuple[str, Any]] = []
    path = tmp_path / "app.db"
    bus = shop(f"memory://{tmp_path.name}", received, database=f"sqlite+aiosqlite:///{path}")
    sync_engine = create_engine(f"sqlite:///{path}")
    async with bus:

        def place_order() -> tuple[str, str]:
            with Session(sync_engine) as session:
                dropped = bus.stage(session, OrderPlaced(order_id="never"))
                session.rollback()
                with session.begin():
                    kept = bus.stage(session, ChargeCard(order_id="o-9"), to="payment", key="o-9")
            return dropped, kept

        dropped, kept = await asyncio.to_thread(place_order)
        await eventually(lambda: received, what="the staged command")
        await eventually(lambda: settled(bus), what="outbox settled")
        assert [event_id for event_id, _ in received] == [kept]
        assert dropped != kept
    sync_engine.dispose()


async def test_publish_middleware_runs_when_a_message_is_staged(database: str) -> None:
    seen: list[str] = []

    class Stamp(Middleware):
        async def publish(self, message: Any, call_next: Any) -> str:
            seen.append(message.type)
            return await call_next(message.replace(headers={"stamp": "yes"}))

    received: list[tuple[str, Any]] = []
    bus = shop("memory://stamped", received, database=database, middleware=[Stamp()])
    stamps: list[str | None] = []

    @bus.subscribe("order.shipped", group="mail")
    async def mail(event: OrderShipped, ctx: Context) -> None:
        stamps.append(ctx.headers.get("stamp"))

    async with bus:
        async with AsyncSession(bus.database) as session, session.begin():
            await bus.publish_many(
                [OrderShipped(order_id="a"), OrderShipped(order_id="b")], session=session
            )
        await eventually(lambda: len(stamps) == 2, what="both stamped events")
    assert seen == ["order.shipped", "order.shipped"]
    assert stamps == ["yes", "yes"]


async def test_an_unroutable_message_becomes_dead_and_its_key_goes_on(database: str) -> None:
    received: list[tuple[str, Any]] = []
    bus = shop("memory://unroutable", received, database=database)
    async with bus:
        async with AsyncSession(bus.database) as session, session.begin():
            await bus.publish(OrderPlaced(order_id="a-1", seq=1), key="a", session=session)
            dead = await bus.publish(Nobody(note="x"), key="a", session=session)
            await bus.send(ChargeCard(order_id="nowhere"), to="no-such-group", session=session)
            await bus.publish(OrderPlaced(order_id="a-2", seq=2), key="a", session=session)
            await bus.publish(OrderPlaced(order_id="b-1", seq=1), key="b", session=session)
        await eventually(lambda: len(received) == 3, what="the routable events")
        await eventually(lambda: settled(bus), what="outbox settled")
        stats = await bus.outbox_stats()
        assert (stats.pending, stats.dead) == (0, 2)
        by_key: dict[str, list[int]] = {}
        for _, event in received:
            by_key.setdefault(event.order_id[0], []).append(event.seq)
        assert by_key == {"a": [1, 2], "b": [1]}
        dead_rows = {
            event_id: error
            for event_id, state, error in await rows(bus, "event_id", "state", "last_error")
            if state == "dead"
        }
        assert dead_rows[dead] == "unroutable: no group subscribes to 'nobody.listens'"
        assert "unroutable: no group named 'no-such-group'" in dead_rows.values()


class Flaky(MemoryTransport):
    """A memory transport whose broker can be down, or refuse one type with an error."""

    down = False
    refuse: str | None = None
    tries = 0

    async def publish(self, messages: Sequence[OutgoingMessage]) -> list[bool]:
        Flaky.tries += 1
        if Flaky.down:
            raise BrokerUnavailable("the broker is down (test)")
        if any(m.type == Flaky.refuse for m in messages):
            raise RuntimeError("this broker refuses that type (test)")
        return await super().publish(messages)


def flaky_transport(url: str, options: Mapping[str, Any]) -> Flaky:
    common, _ = split_options(options, MemoryOptions, transport="memory")
    return Flaky(url, common)


@pytest.fixture
def flaky() -> type[Flaky]:
    Flaky.down, Flaky.refuse, Flaky.tries = False, None, 0
    return Flaky


async def test_while_the_broker_is_down_rows_wait_then_drain_in_key_order(
    database: str, flaky: type[Flaky]
) -> None:
    received: list[tuple[str, Any]] = []
    bus = shop("memory://down", received, database=database, transport=flaky_transport)
    async with bus:
        # Given a broker that is down
        flaky.down = True
        async with AsyncSession(bus.database) as session, session.begin():
            for seq in range(10):
                for key in "abc":
                    order = OrderPlaced(order_id=f"{key}-{seq}", seq=seq)
                    await bus.publish(order, key=key, session=session)
        # Then the relay tries, and the rows wait
        await eventually(lambda: flaky.tries >= 2, what="the relay to try the broker")
        assert (await bus.outbox_stats()).pending == 30
        assert received == []
        # When the broker is back, every row leaves, once, in the order of its key
        flaky.down = False
        await eventually(lambda: len(received) == 30, what="the rows to drain")
        await eventually(lambda: settled(bus), what="outbox settled")
    by_key: dict[str, list[int]] = {}
    for _, event in received:
        by_key.setdefault(event.order_id[0], []).append(event.seq)
    assert by_key == {key: list(range(10)) for key in "abc"}


async def test_a_row_that_keeps_failing_becomes_dead_without_holding_back_others(
    database: str, flaky: type[Flaky]
) -> None:
    received: list[tuple[str, Any]] = []
    bus = shop(
        "memory://failing",
        received,
        database=database,
        transport=flaky_transport,
        outbox_attempts=2,
    )

    @bus.subscribe("order.shipped", group="mail")
    async def mail(event: OrderShipped) -> None:
        return None

    flaky.refuse = "order.shipped"
    async with bus:
        async with AsyncSession(bus.database) as session, session.begin():
            await bus.publish(OrderShipped(order_id="x"), key="x", session=session)
            await bus.publish(OrderPlaced(order_id="x-1", seq=1), key="x", session=session)
            await bus.publish(OrderPlaced(order_id="y-1", seq=1), key="y", session=session)
        await eventually(lambda: len(received) == 2, what="the other rows")
        await eventually(lambda: settled(bus), timeout=15, what="the failing row to die")
        stats = await bus.outbox_stats()
        assert (stats.pending, stats.dead) == (0, 1)
        (error,) = [e for state, e in await rows(bus, "state", "last_error") if state == "dead"]
        assert error.startswith("failed 2 publishes: RuntimeError: this broker refuses")


async def test_outbox_stats_counts_pending_rows_and_their_age(
    database: str, flaky: type[Flaky]
) -> None:
    clock = ManualClock()
    bus = Bus("memory://stats", database=database, transport=flaky_transport, clock=clock)

    @bus.subscribe("order.placed", group="shipping")
    async def ship(event: OrderPlaced) -> None:
        return None

    flaky.down = True
    async with bus:
        assert (await bus.outbox_stats()).idle
        async with AsyncSession(bus.database) as session, session.begin():
            await bus.publish_many(
                [OrderPlaced(order_id="1"), OrderPlaced(order_id="2")], session=session
            )
        clock.advance(42.0)
        stats = await bus.outbox_stats()
        assert (stats.pending, stats.dead, stats.oldest_age) == (2, 0, 42.0)
        assert not stats.idle


async def test_staging_needs_a_database_and_an_async_session() -> None:
    bus = Bus("memory://nodb")
    with pytest.raises(ConfigError, match=r"Bus\(database=\.\.\.\)"):
        await bus.publish(OrderPlaced(order_id="1"), session=object())
    with pytest.raises(ConfigError, match=r"Bus\(database=\.\.\.\)"):
        bus.stage(object(), OrderPlaced(order_id="1"))
    with_db = Bus("memory://db", database="sqlite+aiosqlite:///:memory:")
    with pytest.raises(ConfigError, match="AsyncSession"):
        await with_db.publish(OrderPlaced(order_id="1"), session=object())
    async with with_db:
        with pytest.raises(ConfigError, match="for an AsyncSession use publish"):
            with_db.stage(AsyncSession(with_db.database), OrderPlaced(order_id="1"))


@pytest.mark.parametrize(
    ("database", "message"),
    [
        ("sqlite:///sync.db", "async URL"),
        ("mysql+aiomysql://u@h/db", "aiomysql"),
        ("not a url", "not a SQLAlchemy URL"),
        (42, "AsyncEngine"),
    ],
)
def test_a_bad_database_is_a_config_error(database: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Bus("memory://", database=database)


def test_bad_outbox_options_are_config_errors() -> None:
    for option in ("outbox_retention", "outbox_attempts", "inbox_ttl", "outbox_poll"):
        with pytest.raises(ConfigError, match=option):
            Bus("memory://", **{option: 0})
