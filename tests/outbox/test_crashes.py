"""A worker killed (SIGKILL) in the middle of a transactional handler, and duplicate deliveries
of every event, leave exactly one effect per event in the application's database: the killed
transaction's writes roll back, the delivery comes back, and the inbox absorbs every copy."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.outbox.app import INBOX, OrderPlaced, create_app_tables, effects
from tests.outbox.conftest import Broker
from tests.support import Children, eventually
from tidings import Bus
from tidings.outbox import metadata

ROOT = Path(__file__).resolve().parents[2]
ORDERS = 20
HANG_ON = "o-7"


async def effects_by_event(engine: AsyncEngine) -> dict[str, list[str]]:
    query = select(effects.c.event_id, effects.c.note).order_by(effects.c.id)
    found: dict[str, list[str]] = {}
    async with engine.connect() as conn:
        for event_id, note in await conn.execute(query):
            found.setdefault(event_id, []).append(note)
    return found


async def test_a_worker_killed_mid_handler_and_duplicates_leave_one_effect_per_event(
    shared_broker: Broker, database: str, children: Children, tmp_path: Path
) -> None:
    broker = shared_broker
    out = tmp_path / "out"
    out.mkdir()
    env = {
        "OUTBOX_BROKER": broker.url,
        "OUTBOX_NAME": broker.name,
        "OUTBOX_DB": database,
        "OUTBOX_OUT": str(out),
    }
    app = Bus(broker.url, database=database, **broker.options)
    async with app.database.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await create_app_tables(app.database)

    # Given a worker whose handler hangs, its transaction open, on one order
    target = "tests.outbox.worker_child:bus"
    first = children.tidings("run", target, cwd=ROOT, OUTBOX_HANG_ON=HANG_ON, **env)
    await eventually(lambda: "worker started" in first.log, timeout=30, what="worker 1")

    # When every order is published twice with the same id (a duplicate of each)
    publisher = Bus(broker.url, consume=False, **broker.options)
    async with publisher:
        ids = {}
        for n in range(ORDERS):
            order = OrderPlaced(order_id=f"o-{n}", seq=n)
            ids[order.order_id] = await publisher.publish(order)
            await publisher.publish(order, id=ids[order.order_id])
        # and the worker is killed in the middle of that handler
        hung = out / "in-handler"
        await eventually(hung.exists, timeout=30, what="the handler to hang")
        assert hung.read_text() == ids[HANG_ON]
        first.signal(signal.SIGKILL)
        assert await asyncio.to_thread(first.wait, 30) == -signal.SIGKILL
        # and another worker takes over
        second = children.tidings("run", target, cwd=ROOT, **env)

        async def done() -> bool:
            billed = await effects_by_event(app.database)
            stats = await publisher.stats()
            idle = all(s.ready == 0 and s.in_flight == 0 for s in stats)
            return len(billed) == ORDERS and idle

        await eventually(done, timeout=60, what="every order billed and the group idle")
        second.signal(signal.SIGTERM)
        second.expect_exit(0, 30)

    # Then each order has exactly one effect, and one inbox row
    billed = await effects_by_event(app.database)
    assert sorted(billed) == sorted(ids.values())
    assert {event_id: len(notes) for event_id, notes in billed.items()} == {
        event_id: 1 for event_id in ids.values()
    }
    # The hung handler's write rolled back with its transaction: the next worker's stands
    assert billed[ids[HANG_ON]] == [f"pid {second.pid}"]
    async with app.database.connect() as conn:
        rows = (await conn.execute(select(func.count()).select_from(INBOX))).scalar_one()
    assert rows == ORDERS
    await app.close()
