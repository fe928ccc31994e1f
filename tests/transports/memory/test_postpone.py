"""Postponed deliveries on the memory transport: again after the delay, the attempt not
counted, the first failure kept, an ordered key's place kept."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from tests.support import Inbox, eventually
from tidings.testing import ManualClock
from tidings.transports import Delivery, Failure, GroupSpec, OutgoingMessage, Transport

from .conftest import MakeTransport

ORDERS = GroupSpec("orders", ("order.*",))
LEDGER = GroupSpec("ledger", ("order.*",), ordered=True)


def message(n: int, key: str | None = None) -> OutgoingMessage:
    return OutgoingMessage(f"m-{n}", "order.placed", b"{}", "application/json", key=key)


def failure(at: float) -> Failure:
    return Failure("ConnectionError: down", "builtins.ConnectionError", "down", "", at)


async def in_flight_and_scheduled(t: Transport) -> tuple[int, int]:
    (stats,) = await t.stats()
    return stats.in_flight, stats.scheduled


async def consuming(
    t: Transport, spec: GroupSpec, messages: list[OutgoingMessage], **inbox: Any
) -> Inbox:
    """Publish `messages` to `spec` and consume it with an `Inbox` (made with `inbox`
    options); return the inbox once it got the first delivery."""
    await t.declare([spec])
    await t.publish(messages)
    received = Inbox(t, **inbox)
    await t.consume(spec, received)
    await eventually(lambda: len(received.got) >= 1, what="the first delivery")
    return received


async def until_scheduled(t: Transport, count: int) -> None:
    """Wait until nothing is in flight and `count` deliveries wait for their time."""

    async def done() -> bool:
        return await in_flight_and_scheduled(t) == (0, count)

    await eventually(done, what=f"{count} scheduled, none in flight")


async def test_a_postponed_delivery_returns_after_its_delay_with_the_same_attempt(
    memory: MakeTransport, clock: ManualClock
) -> None:
    t = await memory()
    inbox = await consuming(t, ORDERS, [message(1)])
    # When the first attempt fails, and the retry is postponed (another copy held a claim)
    failed_at = clock.time()
    inbox.settle(inbox.got[0], lambda d: t.retry_later(d, 1.0, failure(failed_at)))
    await until_scheduled(t, 1)
    clock.advance(1.0)
    await eventually(lambda: len(inbox.got) == 2, what="the retry")
    inbox.settle(inbox.got[1], lambda d: t.postpone(d, 5.0))
    # Then it waits, scheduled, for the delay
    await until_scheduled(t, 1)
    clock.advance(5.0)
    await eventually(lambda: len(inbox.got) == 3, what="the postponed delivery")
    # And comes back as attempt 2 again, its first failure kept
    again = inbox.got[2]
    assert (again.id, again.attempt, again.first_failed_at) == ("m-1", 2, failed_at)


@pytest.mark.parametrize("own", [True, False], ids=["memory", "base-class-default"])
async def test_postponing_a_first_attempt_counts_no_attempt(
    memory: MakeTransport, clock: ManualClock, own: bool
) -> None:
    # The base class's default, built on `retry_later`, is what a transport wrapping memory
    # that does not pass `postpone` on gets: it must not count an attempt either.
    t = await memory()
    postpone = t.postpone if own else functools.partial(Transport.postpone, t)
    settled: list[Delivery] = []

    async def settle(d: Delivery) -> None:
        settled.append(d)
        await (postpone(d, 1.0) if len(settled) == 1 else t.ack(d))

    inbox = await consuming(t, ORDERS, [message(1)], settle_with=settle)
    await until_scheduled(t, 1)
    clock.advance(1.0)
    await eventually(lambda: len(inbox.got) == 2, what="the postponed delivery")
    assert [d.attempt for d in inbox.got] == [1, 1]
    if own:
        assert inbox.got[1].first_failed_at is None  # and no failure is recorded


async def test_a_postponed_head_keeps_its_place_in_an_ordered_key(
    memory: MakeTransport, clock: ManualClock
) -> None:
    t = await memory()
    inbox = await consuming(t, LEDGER, [message(1, "a"), message(2, "a"), message(3, "b")])
    await eventually(lambda: sorted(inbox.ids) == ["m-1", "m-3"], what="the heads of a and b")
    # When the head of key a is postponed and key b's head is done
    for delivery in list(inbox.held()):
        if delivery.id == "m-1":
            inbox.settle(delivery, lambda d: t.postpone(d, 5.0))
        else:
            inbox.ack(delivery)
    # Then the rest of key a waits behind it
    await until_scheduled(t, 1)
    assert sorted(inbox.ids) == ["m-1", "m-3"]
    # And once it is due, it comes first, then the rest of its key
    clock.advance(5.0)
    await eventually(lambda: len(inbox.got) == 3, what="the postponed head")
    assert (inbox.got[2].id, inbox.got[2].attempt) == ("m-1", 1)
    inbox.ack(inbox.got[2])
    await eventually(lambda: len(inbox.got) == 4, what="the next of key a")
    assert inbox.got[3].id == "m-2"
    inbox.ack(inbox.got[3])
