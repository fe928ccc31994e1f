"""Bounded groups (``max_ready``) on the embedded broker: a publish past the bound of any
group it reaches stores nothing and raises `QueueFull` at once, naming the full groups;
deliveries in flight or waiting for a retry do not count; what was accepted is never
refused or dropped again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support import Inbox, eventually
from tidings import Bus, Event, QueueFull
from tidings.transports import GroupSpec

from .conftest import OpenTransport, failure, message

SMALL = GroupSpec("small", ("order.*",), max_ready=2)
BIG = GroupSpec("big", ("order.*", "audit.*"))


async def _ready(transport) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {s.group: s.ready + s.scheduled for s in await transport.stats()}


async def test_a_publish_past_the_bound_stores_nothing_and_names_the_group(
    open_transport: OpenTransport,
) -> None:
    transport = await open_transport(name="shop")
    await transport.declare([SMALL, BIG])
    assert await transport.publish([message("order.placed"), message("order.placed")]) == [
        True,
        True,
    ]

    # When a publish would reach the full group (and another one with room)
    with pytest.raises(QueueFull) as info:
        await transport.publish([message("audit.noted"), message("order.placed")])

    # Then nothing of it was stored, in either group, and the error says what and why
    assert info.value.groups == ["small"]
    text = str(info.value)
    assert "'small'" in text and "max_ready=2" in text and "'shop'" in text
    assert "add consumers" in text and "\n" not in text
    assert await _ready(transport) == {"big": 2, "small": 2}

    # And what the full group does not receive still goes out
    assert await transport.publish([message("audit.noted")]) == [True]


async def test_a_call_larger_than_the_room_left_is_refused_whole(
    open_transport: OpenTransport,
) -> None:
    transport = await open_transport()
    await transport.declare([SMALL])
    assert await transport.publish([message("order.placed")]) == [True]
    with pytest.raises(QueueFull):
        await transport.publish([message("order.placed"), message("order.placed")])
    assert await _ready(transport) == {"small": 1}


async def test_several_full_groups_are_all_named(open_transport: OpenTransport) -> None:
    transport = await open_transport()
    await transport.declare([SMALL, GroupSpec("tiny", ("order.*",), max_ready=1)])
    await transport.publish([message("order.placed")])
    with pytest.raises(QueueFull) as info:
        await transport.publish([message("order.placed"), message("order.placed")])
    assert info.value.groups == ["small", "tiny"]
    assert "max_ready=1" in str(info.value) and "max_ready=2" in str(info.value)


async def test_a_full_group_fails_only_the_calls_that_reach_it(
    open_transport: OpenTransport,
) -> None:
    transport = await open_transport()
    await transport.declare([GroupSpec("small", ("order.*",), max_ready=1), BIG])

    # When calls to a full group and to other groups commit in one transaction
    results = await asyncio.gather(
        transport.publish([message("audit.noted")]),
        transport.publish([message("order.placed")]),
        transport.publish([message("order.placed")]),
        transport.publish([message("audit.noted")]),
        return_exceptions=True,
    )

    # Then the call that found the group full failed alone
    assert results[0] == results[1] == results[3] == [True]
    assert isinstance(results[2], QueueFull)
    assert await _ready(transport) == {"big": 3, "small": 1}


async def test_delayed_publishes_count_and_in_flight_and_retrying_ones_do_not(
    open_transport: OpenTransport,
) -> None:
    transport = await open_transport()
    await transport.declare([SMALL])
    inbox = Inbox(transport)
    await transport.consume(SMALL, inbox)

    # Given one delivery in flight and one waiting for its retry
    await transport.publish([message("order.placed")])
    await transport.publish([message("order.placed")])
    await eventually(lambda: len(inbox.got) == 2, what="both delivered")
    inbox.settle(inbox.got[1], lambda d: transport.retry_later(d, 60.0, failure()))
    await eventually(lambda: _counts(transport, in_flight=1, scheduled=1), what="the retry")

    # Then two delayed publishes fill the group, and a third publish is refused
    await transport.publish([message("order.placed", delay=60.0)])
    await transport.publish([message("order.placed", delay=60.0)])
    with pytest.raises(QueueFull):
        await transport.publish([message("order.placed")])


async def _counts(transport, **expected: int) -> bool:  # type: ignore[no-untyped-def]
    [stats] = await transport.stats()
    return all(getattr(stats, name) == value for name, value in expected.items())


async def test_retries_and_postponements_of_accepted_deliveries_are_never_refused(
    open_transport: OpenTransport,
) -> None:
    transport = await open_transport()
    spec = GroupSpec("small", ("order.*",), max_ready=1, concurrency=4)
    await transport.declare([spec])
    inbox = Inbox(transport)
    await transport.consume(spec, inbox)

    # Given two deliveries in flight, and the group full behind them (a delayed publish)
    await transport.publish([message("order.placed", body=b"retried")])
    await transport.publish([message("order.placed", body=b"postponed")])
    await eventually(lambda: len(inbox.got) == 2, what="both delivered")
    await transport.publish([message("order.placed", body=b"later", delay=60.0)])
    with pytest.raises(QueueFull):
        await transport.publish([message("order.placed")])

    # When one is retried and the other postponed
    for d in list(inbox.got):
        if d.body == b"retried":
            inbox.settle(d, lambda d: transport.retry_later(d, 0.0, failure()))
        else:
            inbox.settle(d, lambda d: transport.postpone(d, 0.0))

    # Then both come back past the bound, the retry with its attempt counted
    await eventually(lambda: len(inbox.got) == 4, what="both back")
    assert sorted((d.body, d.attempt) for d in inbox.got[2:]) == [
        (b"postponed", 1),
        (b"retried", 2),
    ]
    assert await _counts(transport, in_flight=2, scheduled=1, dead=0)


async def test_the_bound_is_stored_with_the_group_and_follows_redeclaration(
    open_transport: OpenTransport,
) -> None:
    # Given a group declared with a bound by one process, and another process publishing
    declarer, publisher = await open_transport(), await open_transport()
    await declarer.declare([GroupSpec("g", ("x.*",), max_ready=1)])
    await publisher.publish([message("x.y")])
    with pytest.raises(QueueFull):
        await publisher.publish([message("x.y")])

    # When it is declared again with a larger bound, then with none
    await declarer.declare([GroupSpec("g", ("x.*",), max_ready=2)])
    await publisher.publish([message("x.y")])
    with pytest.raises(QueueFull):
        await publisher.publish([message("x.y")])
    await declarer.declare([GroupSpec("g", ("x.*",))])

    # Then the publisher follows each change
    assert await publisher.publish([message("x.y") for _ in range(5)]) == [True] * 5


class Noted(Event, type="audit.noted"):
    n: int


async def test_a_bus_publish_to_a_full_group_raises_queue_full(tmp_path: Path) -> None:
    # Given a publish-only bus whose group holds three ready events at most
    bus = Bus(f"sqlite:///{tmp_path / 'bus.db'}", consume=False)

    @bus.subscribe("audit.noted", group="audit", max_ready=3)
    async def note(event: Noted) -> None:
        pass

    async with bus:
        await bus.publish_many([Noted(n=n) for n in range(3)])

        # Then a fourth raises at once, and nothing more was stored
        with pytest.raises(QueueFull, match="'audit'"):
            await bus.publish(Noted(n=3))
        [stats] = await bus.stats()
        assert stats.ready == 3
