"""`postpone` on the embedded broker: the delivery comes back after the delay with its
attempt count unchanged (a retry counts one, an expired lease counts one, a postponement
none), and in an ordered group it keeps its place at the head of its key."""

from __future__ import annotations

from tests.support import Inbox, eventually
from tidings.transports import Delivery, GroupSpec

from .conftest import OpenTransport, failure, idle, message

ORDERED = GroupSpec("ledger", ("entry.*",), concurrency=8, ordered=True)


async def test_a_postponed_delivery_comes_back_with_the_same_attempt(
    open_transport: OpenTransport,
) -> None:
    transport = await open_transport(lease=0.3)
    spec = GroupSpec("g", ("x.*",))
    await transport.declare([spec])
    steps = iter(["postpone", "retry", "postpone", "expire", "postpone", "ack"])

    async def settle(d: Delivery) -> None:
        step = next(steps)
        if step == "postpone":
            await transport.postpone(d, 0.05)
        elif step == "retry":
            await transport.retry_later(d, 0.0, failure())
        elif step == "expire":
            raise RuntimeError("the worker died")  # unsettled: its lease runs out
        else:
            await transport.ack(d)

    inbox = Inbox(transport, settle_with=settle)
    await transport.consume(spec, inbox)

    # When one delivery is postponed, retried, postponed, lost, postponed and acked
    await transport.publish([message("x.y")])

    # Then only the retry and the expired lease counted an attempt
    await eventually(lambda: len(inbox.got) == 6, what="six deliveries")
    assert [d.attempt for d in inbox.got] == [1, 1, 2, 2, 3, 3]
    assert inbox.got[0].first_failed_at is None
    assert inbox.got[2].first_failed_at == inbox.got[5].first_failed_at is not None
    await eventually(lambda: idle(transport), what="the ack")


async def test_a_postponed_delivery_keeps_its_place_at_the_head_of_its_key(
    open_transport: OpenTransport,
) -> None:
    transport = await open_transport()
    await transport.declare([ORDERED])

    async def settle(d: Delivery) -> None:
        if d.body == b"a-0" and sum(g.body == b"a-0" for g in inbox.got) == 1:
            await transport.postpone(d, 0.3)
        else:
            await transport.ack(d)

    inbox = Inbox(transport, settle_with=settle)
    await transport.consume(ORDERED, inbox)

    # When the head of key a is postponed
    await transport.publish(
        [message("entry.made", body=f"{k}-{n}".encode(), key=k) for k in "ab" for n in range(3)]
    )

    # Then key a waits for its head, which comes back first with the same attempt
    await eventually(lambda: len(inbox.got) == 7, what="every delivery")
    assert [(d.body, d.attempt) for d in inbox.got if d.key == "a"] == [
        (b"a-0", 1),
        (b"a-0", 1),
        (b"a-1", 1),
        (b"a-2", 1),
    ]
    assert [d.body for d in inbox.got if d.key == "b"] == [b"b-0", b"b-1", b"b-2"]
