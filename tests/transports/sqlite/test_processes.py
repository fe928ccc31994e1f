"""Several transports, and several real processes, on one embedded-broker file."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import tidings
from tests.support import Inbox, eventually
from tidings.transports import Delivery, GroupSpec

from .conftest import OpenTransport, message

SRC = str(Path(tidings.__file__).resolve().parent.parent)
NO_POLL = 60.0  # consumers that only a wake-up can reach within a test's deadline


def _python(code: str, db_url: str) -> subprocess.Popen[str]:
    """Run `code` in a fresh interpreter with DB_URL set; stdout is a text pipe."""
    env = {**os.environ, "DB_URL": db_url, "PYTHONPATH": SRC}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_a_group_declared_by_another_process_receives_the_next_publish_at_once(
    open_transport: OpenTransport,
) -> None:
    # Given two transports on one file (two processes), the first already routing
    publisher = await open_transport()
    await publisher.declare([GroupSpec("early", ("x.*",))])
    assert await publisher.publish([message("x.first")]) == [True]
    worker = await open_transport(poll_interval=NO_POLL)

    # When the second declares a new group and consumes it
    late = GroupSpec("late", ("x.*",))
    await worker.declare([late])
    inbox = Inbox(worker, auto_ack=True)
    await worker.consume(late, inbox)

    # Then the first process's next publish reaches it
    assert await publisher.publish([message("x.second")]) == [True]
    await eventually(lambda: inbox.got, timeout=5.0, what="the first delivery")
    assert inbox.got[0].type == "x.second"

    # And, once it is idle, a publish from the other process wakes it at once
    started = time.monotonic()
    await publisher.publish([message("x.third")])
    await eventually(lambda: len(inbox.got) == 2, timeout=5.0, what="the wake-up")
    assert inbox.times[1] - started < 1.0


@pytest.mark.slow
async def test_a_publish_from_another_process_wakes_an_idle_consumer_within_milliseconds(
    open_transport: OpenTransport, db_url: str
) -> None:
    # Given an idle consumer that polls only once a minute
    transport = await open_transport(poll_interval=NO_POLL)
    spec = GroupSpec("g", ("ping.*",))
    await transport.declare([spec])
    latencies: list[float] = []

    async def deliver(d: Delivery) -> None:
        latencies.append(time.time() - float(d.body))
        await transport.ack(d)

    await transport.consume(spec, deliver)

    # When another process publishes five events, one every 50 ms
    child = _python(
        """
        import asyncio, os, time, uuid
        from tidings.transports import OutgoingMessage, TransportOptions
        from tidings.transports.sqlite import SqliteTransport

        async def main():
            async with SqliteTransport(os.environ["DB_URL"], TransportOptions()) as t:
                for _ in range(5):
                    body = repr(time.time()).encode()
                    msg = OutgoingMessage(id=uuid.uuid4().hex, type="ping.x", body=body)
                    await t.publish([msg])
                    await asyncio.sleep(0.05)

        asyncio.run(main())
        """,
        db_url,
    )
    try:
        await eventually(lambda: len(latencies) == 5, timeout=20.0, what="five deliveries")
        assert await asyncio.to_thread(child.wait, 20) == 0
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()

    # Then each was handled well before any poll, typically in a few milliseconds
    assert max(latencies) < 0.5, latencies


@pytest.mark.slow
async def test_a_killed_workers_delivery_comes_back_with_the_next_attempt(
    open_transport: OpenTransport, db_url: str
) -> None:
    # Given a worker process that takes a delivery and hangs in its handler
    transport = await open_transport()
    spec = GroupSpec("g", ("job.*",))
    await transport.declare([spec])
    await transport.publish([message("job.run", body=b"work")])
    child = _python(
        """
        import asyncio, os
        from tidings.transports import GroupSpec, TransportOptions
        from tidings.transports.sqlite import SqliteTransport

        async def main():
            t = SqliteTransport(os.environ["DB_URL"], TransportOptions(lease=0.5))
            await t.open()

            async def deliver(d):
                print("holding", d.attempt, flush=True)
                await asyncio.Event().wait()

            await t.consume(GroupSpec("g", ("job.*",)), deliver)
            await asyncio.Event().wait()

        asyncio.run(main())
        """,
        db_url,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.to_thread(child.stdout.readline)
        assert line.split() == ["holding", "1"]

        # When it is killed with SIGKILL
        child.send_signal(signal.SIGKILL)
        assert await asyncio.to_thread(child.wait, 10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()

    # Then its lease expires and the delivery returns here with attempt 2
    inbox = Inbox(transport, auto_ack=True)
    await transport.consume(spec, inbox)
    await eventually(lambda: inbox.got, timeout=10.0, what="the returned delivery")
    assert [(d.body, d.attempt) for d in inbox.got] == [(b"work", 2)]


@pytest.mark.slow
async def test_an_idle_consumer_uses_almost_no_cpu(open_transport: OpenTransport) -> None:
    transport = await open_transport()
    spec = GroupSpec("g", ("x.*",))
    await transport.declare([spec])
    await transport.consume(spec, Inbox(transport, auto_ack=True))
    await asyncio.sleep(0.1)  # let it settle into its idle wait

    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.sleep(1.5)  # measuring a period of idleness, not waiting for an event
    used = (time.process_time() - cpu) / (time.monotonic() - wall)

    assert used < 0.05, f"{used:.1%} of a CPU while idle"
