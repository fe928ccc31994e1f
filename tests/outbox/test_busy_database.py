"""A SQLite database that another writer keeps busy: the relay marks what the broker confirmed
as sent once the writer lets go (no second send), and a pass the database refuses is one
warning, not an error with a traceback; the rows leave once it is free again.

The application's engine has a busy timeout of 50 ms, so "busy for longer than the timeout"
takes a fraction of a second; another connection holds SQLite's write lock (``BEGIN
IMMEDIATE``) for as long as the test says.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from tests.outbox.app import OrderPlaced
from tests.support import eventually
from tidings import Bus, Context
from tidings.transports import OutgoingMessage, split_options
from tidings.transports.memory import MemoryOptions, MemoryTransport


class Locker:
    """Holds the write lock of a SQLite file for `seconds` after each of the first
    `times` publishes (as a busy writer would, right after the broker confirmed)."""

    path: Path
    seconds = 0.0
    times = 0
    held = 0

    @classmethod
    def hold(cls) -> None:
        # timeout=0: a COMMIT that must wait for a reader fails at once instead of blocking
        # the event loop (and with it the relay, whose reads it waits for); it is tried again.
        conn = sqlite3.connect(cls.path, check_same_thread=False, isolation_level=None, timeout=0)
        conn.execute("BEGIN IMMEDIATE")
        cls.held += 1

        def release() -> None:
            try:
                conn.execute("COMMIT")
            except sqlite3.OperationalError:  # a reader still holds the file
                asyncio.get_running_loop().call_later(0.02, release)
                return
            conn.close()

        asyncio.get_running_loop().call_later(cls.seconds, release)


class Busy(MemoryTransport):
    async def publish(self, messages: Sequence[OutgoingMessage]) -> list[bool]:
        routed = await super().publish(messages)
        if Locker.held < Locker.times:
            Locker.hold()
        return routed


def busy_transport(url: str, options: Mapping[str, Any]) -> Busy:
    common, _ = split_options(options, MemoryOptions, transport="memory")
    return Busy(url, common)


async def run(tmp_path: Path, *, seconds: float, lease: float) -> list[str]:
    """Stage one event on a relay whose database is locked after each publish."""
    Locker.path, Locker.seconds, Locker.times, Locker.held = tmp_path / "app.db", seconds, 1, 0
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{Locker.path}", connect_args={"timeout": 0.05}
    )
    received: list[str] = []
    bus = Bus(
        "memory://busy",
        database=engine,
        transport=busy_transport,
        outbox_poll=0.1,
        outbox_lease=lease,
    )

    @bus.subscribe("order.placed", group="shipping")
    async def ship(event: OrderPlaced, ctx: Context) -> None:
        received.append(ctx.event_id)

    async with bus:
        async with AsyncSession(engine) as session, session.begin():
            await bus.publish(OrderPlaced(order_id="o-1"), session=session)

        async def idle() -> bool:
            return (await bus.outbox_stats()).idle

        # The lease is long: only marking the row sent makes the outbox idle in time
        await eventually(idle, timeout=5, what="the row marked sent")
        await eventually(lambda: received, what="the delivery")
    await engine.dispose()
    return received


async def test_a_confirmed_row_is_marked_sent_once_the_writer_lets_go(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a writer that holds the database for 0.1 s (twice the busy timeout) right after
    # the broker confirmed; When the relay marks the row sent
    received = await run(tmp_path, seconds=0.1, lease=60.0)
    # Then it is sent once, marked, and nothing was logged as an error
    assert Locker.held == 1
    assert len(received) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_database_busy_for_long_is_one_warning_and_the_rows_leave_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a writer that holds the database for a second: longer than the relay tries
    received = await run(tmp_path, seconds=1.0, lease=0.5)
    # Then the relay warned once, without a traceback, and the row left (again, once its
    # lease ended: at least once)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelname for r in warnings] == ["WARNING"]
    assert "the database refused" in warnings[0].getMessage()
    assert warnings[0].exc_info is None
    assert received
