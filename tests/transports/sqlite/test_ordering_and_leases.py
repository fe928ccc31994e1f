"""Ordered groups, leases, renewals and stopping consumers on the embedded broker."""

from __future__ import annotations

import asyncio
import time

from tests.support import Inbox, eventually
from tidings.transports import Delivery, GroupSpec

from .conftest import OpenTransport, failure, idle, message

ORDERED = GroupSpec("ledger", ("entry.*",), concurrency=8, ordered=True)


async def test_an_ordered_group_hands_out_only_the_head_of_each_key(
    open_transport: OpenTransport,
) -> None:
    transport = await open_transport()
    await transport.declare([ORDERED])
    release = asyncio.Event()

    async def settle(d: Delivery) -> None:
        await release.wait()
        await transport.ack(d)

    # Given five events for each of two keys, and three without a key
    sent = [message("entry.made", body=f"{k}-{n}".encode(), key=k) for n in range(5) for k in "ab"]
    sent += [message("entry.made", body=f"free-{n}".encode()) for n in range(3)]
    await transport.publish(sent)

    # When a consumer with room for eight starts
    inbox = Inbox(transport, settle_with=settle)
    await transport.consume(ORDERED, inbox)

    # Then it holds the head of each key and every keyless event, nothing more
    await eventually(lambda: len(inbox.got) == 5, what="five first deliveries")
    assert sorted(d.body for d in inbox.got) == [
        b"a-0",
        b"b-0",
        b"free-0",
        b"free-1",
        b"free-2",
    ]
    for _ in range(20):  # and it stays so while they run
        await asyncio.sleep(0.005)
        assert len(inbox.got) == 5

    # When handlers finish, each key goes on strictly in publish order
    release.set()
    await eventually(lambda: len(inbox.got) == 13, what="every delivery")
    for key in "ab":
        bodies = [d.body for d in inbox.got if d.key == key]
        assert bodies == [f"{key}-{n}".encode() for n in range(5)]


async def test_a_scheduled_retry_holds_back_only_its_own_key(open_transport: OpenTransport) -> None:
    transport = await open_transport()
    await transport.declare([ORDERED])

    async def settle(d: Delivery) -> None:
        if d.body == b"a-0" and d.attempt == 1:
            await transport.retry_later(d, 0.4, failure())
        else:
            await transport.ack(d)

    inbox = Inbox(transport, settle_with=settle)
    await transport.consume(ORDERED, inbox)

    # When the head of key a fails once and waits for its retry
    await transport.publish(
        [message("entry.made", body=f"{k}-{n}".encode(), key=k) for k in "ab" for n in range(3)]
    )

    # Then key b runs to the end while a's later events wait behind the retry
    await eventually(
        lambda: [d.body for d in inbox.got if d.key == "b"] == [b"b-0", b"b-1", b"b-2"],
        what="key b done",
    )
    assert [(d.body, d.attempt) for d in inbox.got if d.key == "a"] == [(b"a-0", 1)]

    await eventually(lambda: len(inbox.got) == 7, what="key a after its retry")
    assert [(d.body, d.attempt) for d in inbox.got if d.key == "a"] == [
        (b"a-0", 1),
        (b"a-0", 2),
        (b"a-1", 1),
        (b"a-2", 1),
    ]


async def test_an_expired_lease_returns_the_delivery_with_the_next_attempt(
    open_transport: OpenTransport,
) -> None:
    transport = await open_transport(lease=0.3)
    spec = GroupSpec("g", ("x.*",))
    await transport.declare([spec])
    seen: list[tuple[int, float]] = []

    async def deliver(d: Delivery) -> None:
        seen.append((d.attempt, time.monotonic()))
        if d.attempt == 1:
            # A callback that fails without settling (as a crashed worker would) leaves its
            # lease to expire.
            raise RuntimeError("the worker died")
        await transport.ack(d)

    await transport.consume(spec, deliver)
    await transport.publish([message("x.y")])

    await eventually(lambda: len(seen) == 2, what="the redelivery")
    assert [a for a, _ in seen] == [1, 2]
    assert seen[1][1] - seen[0][1] >= 0.25


async def test_settling_after_losing_the_lease_leaves_the_new_holder_alone(
    open_transport: OpenTransport,
) -> None:
    transport = await open_transport(lease=0.3)
    spec = GroupSpec("g", ("x.*",))
    await transport.declare([spec])
    held: list[Delivery] = []
    release = asyncio.Event()

    async def deliver(d: Delivery) -> None:
        held.append(d)
        if d.attempt == 1:
            raise RuntimeError("lost")  # lease expires, the delivery comes back
        await release.wait()

    await transport.consume(spec, deliver)
    await transport.publish([message("x.y")])
    await eventually(lambda: len(held) == 2, what="the second attempt")

    # When the first holder acks and dead-letters late
    await transport.ack(held[0])
    await transport.dead_letter(held[0], failure())

    # Then the second attempt is still in flight and nothing was dead-lettered
    [stats] = await transport.stats()
    assert (stats.in_flight, stats.dead) == (1, 0)
    await transport.ack(held[1])
    release.set()
    [stats] = await transport.stats()
    assert (stats.in_flight, stats.ready, stats.dead) == (0, 0, 0)


async def test_leases_are_renewed_while_a_handler_runs(open_transport: OpenTransport) -> None:
    # Given two consumers on two transports with a short lease
    first, second = await open_transport(lease=0.2), await open_transport(lease=0.2)
    spec = GroupSpec("g", ("x.*",))
    await first.declare([spec])
    release = asyncio.Event()
    inbox = Inbox(first, settle_with=lambda d: _ack_after(first, d, release))
    await first.consume(spec, inbox)
    await first.publish([message("x.y")])
    await eventually(lambda: inbox.got, what="the first delivery")
    other = Inbox(second, auto_ack=True)
    await second.consume(spec, other)

    # When the handler runs for several lease periods
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        # Then no one else gets the delivery
        assert other.got == [] and len(inbox.got) == 1
        await asyncio.sleep(0.02)
    release.set()
    await eventually(lambda: idle(first), what="the ack")
    assert other.got == []


async def _ack_after(transport, delivery: Delivery, release: asyncio.Event) -> None:  # type: ignore[no-untyped-def]
    await release.wait()
    await transport.ack(delivery)


async def test_stopping_waits_for_handlers_then_returns_the_unfinished_ones(
    open_transport: OpenTransport,
) -> None:
    transport = await open_transport()
    spec = GroupSpec("g", ("x.*",), concurrency=4)
    await transport.declare([spec])
    started: list[Delivery] = []
    cancelled: list[bytes] = []

    async def deliver(d: Delivery) -> None:
        started.append(d)
        try:
            if d.body == b"quick":
                await asyncio.sleep(0.05)
            else:
                await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(d.body)
            raise
        await transport.ack(d)

    consumer = await transport.consume(spec, deliver)
    await transport.publish([message("x.y", body=b"quick"), message("x.y", body=b"stuck")])
    await eventually(lambda: len(started) == 2, what="both running")

    # When the consumer stops with a short timeout
    await consumer.stop(0.5)

    # Then the quick one finished and was acked, the stuck one was cancelled and is ready
    # again with its attempt counted
    assert cancelled == [b"stuck"]
    [stats] = await transport.stats()
    assert (stats.ready, stats.in_flight, stats.consumers) == (1, 0, 0)
    inbox = Inbox(transport, auto_ack=True)
    await transport.consume(spec, inbox)
    await eventually(lambda: inbox.got, what="the returned delivery")
    assert [(d.body, d.attempt) for d in inbox.got] == [(b"stuck", 2)]
    await consumer.stop(0.0)  # stopping twice is harmless


async def test_a_stopped_consumer_is_not_registered_again_by_a_heartbeat(
    open_transport: OpenTransport,
) -> None:
    # Given a transport whose housekeeping heartbeats every few milliseconds
    transport = await open_transport(cleanup_interval=0.002)
    spec = GroupSpec("g", ("x.*",))
    await transport.declare([spec])

    # When consumers start and stop again and again while heartbeats run
    for _ in range(40):
        consumer = await transport.consume(spec, Inbox(transport, auto_ack=True))
        await asyncio.sleep(0.001)
        await consumer.stop(0.0)

    # Then none of them stays registered (a ghost would count for 30 s)
    [stats] = await transport.stats()
    assert stats.consumers == 0
