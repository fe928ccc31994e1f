"""``max_ready`` on the memory transport: a publish that would take a group past its bound
raises `QueueFull` and stores nothing of the call; accepted deliveries always return."""

from __future__ import annotations

import pytest

from tests.support import Inbox, eventually
from tidings import QueueFull
from tidings.testing import ManualClock
from tidings.transports import Failure, GroupSpec, GroupStats, OutgoingMessage, Transport

from .conftest import MakeTransport

BOUNDED = GroupSpec("bounded", ("order.*",), max_ready=3)
OPEN = GroupSpec("open", ("order.*",))


def message(n: int, *, delay: float = 0.0, group: str | None = None) -> OutgoingMessage:
    return OutgoingMessage(
        f"m-{n}", "order.placed", b"{}", "application/json", delay=delay, group=group
    )


async def stats_of(t: Transport, group: str) -> GroupStats:
    return next(s for s in await t.stats() if s.group == group)


async def waiting(t: Transport, group: str) -> int:
    stats = await stats_of(t, group)
    return stats.ready + stats.scheduled


async def test_a_publish_past_the_bound_raises_and_stores_nothing(memory: MakeTransport) -> None:
    # Given a bounded group and an unbounded one on the same events
    t = await memory()
    await t.declare([BOUNDED, OPEN])
    assert await t.publish([message(n) for n in range(3)]) == [True] * 3
    # When one more event comes
    with pytest.raises(QueueFull) as caught:
        await t.publish([message(3)])
    # Then the full group is named, with what to do, and the event reached no group
    assert caught.value.groups == ["bounded"]
    text = str(caught.value)
    assert "'bounded'" in text and "max_ready=3" in text and "nothing" in text
    assert "\n" not in text
    assert await waiting(t, "bounded") == 3
    assert await waiting(t, "open") == 3
    # And it was not retained either: a replay of the open group brings back three
    assert await t.replay("open", 0.0) == 3


async def test_a_call_that_would_overflow_is_refused_whole(memory: MakeTransport) -> None:
    t = await memory()
    await t.declare([BOUNDED, OPEN])
    await t.publish([message(0), message(1)])
    # One place left, two messages in the call: neither is stored
    with pytest.raises(QueueFull):
        await t.publish([message(2), message(3)])
    assert (await waiting(t, "bounded"), await waiting(t, "open")) == (2, 2)
    # A command sent to the full group is refused as well
    await t.publish([message(4)])
    with pytest.raises(QueueFull) as caught:
        await t.publish([message(5, group="bounded")])
    assert caught.value.groups == ["bounded"]


async def test_every_full_group_is_named(memory: MakeTransport) -> None:
    t = await memory()
    small = GroupSpec("small", ("order.*",), max_ready=1)
    await t.declare([BOUNDED, small, OPEN])
    await t.publish([message(0)])
    with pytest.raises(QueueFull) as caught:
        await t.publish([message(n) for n in (1, 2, 3)])
    assert caught.value.groups == ["bounded", "small"]
    assert "groups" in str(caught.value)


async def test_delayed_publishes_count_as_ready(memory: MakeTransport) -> None:
    t = await memory()
    await t.declare([BOUNDED])
    await t.publish([message(n, delay=60.0) for n in range(3)])
    with pytest.raises(QueueFull):
        await t.publish([message(3)])


async def test_redeclaring_with_another_bound_applies_it(memory: MakeTransport) -> None:
    t = await memory()
    await t.declare([BOUNDED])
    await t.publish([message(n) for n in range(3)])
    await t.declare([GroupSpec("bounded", ("order.*",), max_ready=4)])
    await t.publish([message(3)])
    await t.declare([GroupSpec("bounded", ("order.*",))])  # unbounded again
    await t.publish([message(n) for n in range(4, 10)])
    assert await waiting(t, "bounded") == 10


async def test_in_flight_and_retrying_deliveries_leave_room_and_always_return(
    memory: MakeTransport, clock: ManualClock
) -> None:
    # Given a full bounded group whose three deliveries a consumer holds (three at a time)
    t = await memory()
    spec = GroupSpec("bounded", ("order.*",), concurrency=3, max_ready=3)
    await t.declare([spec])
    await t.publish([message(n) for n in range(3)])
    inbox = Inbox(t)
    await t.consume(spec, inbox)
    await eventually(lambda: len(inbox.got) == 3, what="three deliveries in flight")
    # Then deliveries in flight leave room for three more
    await t.publish([message(n) for n in range(3, 6)])
    with pytest.raises(QueueFull):
        await t.publish([message(6)])
    # When the held ones fail and wait (two retries, one postponement), the consumer takes
    # the next three, and three more fill the group again
    first, second, third = inbox.got
    down = Failure("ConnectionError: down", "builtins.ConnectionError", "down", "", clock.time())
    inbox.settle(first, lambda d: t.retry_later(d, 10.0, down))
    inbox.settle(second, lambda d: t.retry_later(d, 10.0, down))
    inbox.settle(third, lambda d: t.postpone(d, 10.0))
    await eventually(lambda: len(inbox.got) == 6, what="the next three in flight")
    await t.publish([message(n) for n in range(6, 9)])
    with pytest.raises(QueueFull):
        await t.publish([message(9)])
    # Then the waiting ones come back when due though the group is full: nothing accepted
    # is dropped
    clock.advance(10.0)
    while len(inbox.got) < 12:
        for delivery in inbox.held():
            inbox.ack(delivery)
        await eventually(lambda: len(inbox.got) == 12 or inbox.held(), what="more deliveries")
    assert sorted(inbox.ids) == sorted([f"m-{n}" for n in range(9)] + ["m-0", "m-1", "m-2"])
    assert (await stats_of(t, "bounded")).ready == 0
