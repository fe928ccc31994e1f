"""Request/reply on the embedded broker: a request keeps its ``reply_to`` on every delivery,
and reply inboxes in the file take the replies sent to them, are removed when closed, and
never show up as groups."""

from __future__ import annotations

import asyncio
import stat
import time
from pathlib import Path

import pytest

from tests.support import Inbox, eventually
from tidings import StateError
from tidings.transports import Delivery, GroupSpec
from tidings.transports.sqlite import sqlite_path

from .conftest import OpenTransport, Replies, failure, idle, message, reply, rows

NO_POLL = 60.0  # inboxes and consumers that only a wake-up can reach within a test's deadline
ADDRESS = "sqlite-reply:0123456789abcdef0123456789abcdef"


def modes(directory: Path) -> dict[str, int]:
    """The permission bits of each file in `directory`, by name."""
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()}


# -- a request's reply_to -----------------------------------------------------------------


async def test_a_request_keeps_its_reply_to_through_retries_postponements_and_lost_leases(
    open_transport: OpenTransport,
) -> None:
    # Given a group whose handler retries, postpones, loses its lease, then acks
    transport = await open_transport(lease=0.3)
    spec = GroupSpec("pricing", ("price.*",))
    await transport.declare([spec])
    steps = iter(["retry", "postpone", "expire", "ack"])

    async def settle(d: Delivery) -> None:
        step = next(steps)
        if step == "retry":
            await transport.retry_later(d, 0.0, failure())
        elif step == "postpone":
            await transport.postpone(d, 0.05)
        elif step == "expire":
            raise RuntimeError("the worker died")  # unsettled: its lease runs out
        else:
            await transport.ack(d)

    inbox = Inbox(transport, settle_with=settle)
    await transport.consume(spec, inbox)

    # When a request is sent to the group
    request = message("price.quote", headers={"x-h": "1"}, group="pricing", reply_to=ADDRESS)
    assert await transport.publish([request]) == [True]

    # Then every delivery of it carries its reply_to, and the headers as published only
    await eventually(lambda: len(inbox.got) == 4, what="four deliveries")
    assert [(d.attempt, d.reply_to) for d in inbox.got] == [
        (1, ADDRESS),
        (2, ADDRESS),
        (2, ADDRESS),
        (3, ADDRESS),
    ]
    assert all(dict(d.headers) == {"x-h": "1"} for d in inbox.got)
    await eventually(lambda: idle(transport), what="the ack")


async def test_only_requests_carry_a_reply_to(open_transport: OpenTransport) -> None:
    # Given a group routing events of a type
    transport = await open_transport()
    spec = GroupSpec("pricing", ("price.*",))
    await transport.declare([spec])
    inbox = Inbox(transport, auto_ack=True)
    await transport.consume(spec, inbox)

    # When an event, a request and a command are published
    await transport.publish([message("price.changed", id="event")])
    await transport.publish([message("price.quote", id="request", reply_to=ADDRESS)])
    await transport.publish([message("price.quote", id="command", group="pricing")])

    # Then only the request's delivery has a reply_to
    await eventually(lambda: len(inbox.got) == 3, what="three deliveries")
    assert {d.id: d.reply_to for d in inbox.got} == {
        "event": None,
        "request": ADDRESS,
        "command": None,
    }


# -- inboxes -------------------------------------------------------------------------------


async def test_replies_reach_their_inbox_in_order_with_everything_sent(
    open_transport: OpenTransport,
) -> None:
    # Given an inbox that only a wake-up can reach in time, and another transport on the file
    owner = await open_transport(poll_interval=NO_POLL)
    sender = await open_transport()
    replies = Replies()
    inbox = await owner.open_replies(replies)
    assert inbox.address.startswith("sqlite-reply:")

    # When both send it replies
    await owner.send_reply(inbox.address, reply(0, key="k"))
    for n in range(1, 4):
        await sender.send_reply(inbox.address, reply(n))

    # Then they arrive in the order they were sent, as sent
    await eventually(lambda: len(replies.got) == 4, timeout=5.0, what="four replies")
    assert replies.ids == ["reply-0", "reply-1", "reply-2", "reply-3"]
    first = replies.got[0]
    assert (first.type, first.body, first.content_type, first.key) == (
        "order.priced",
        b'{"n": 0}',
        "application/json",
        "k",
    )
    assert dict(first.headers) == {"ce-causationid": "request-0"}
    assert first.reply_to is None

    # And each was taken off the file
    await eventually(lambda: rows(sqlite_path(owner.url), "replies") == 0, what="no replies")


async def test_a_reply_from_the_inbox_owners_own_transport_reaches_it_at_once(
    open_transport: OpenTransport,
) -> None:
    # Given an inbox with neither wake-up datagrams nor a poll within the test's deadline
    transport = await open_transport(wake=False, poll_interval=NO_POLL)
    replies = Replies()
    inbox = await transport.open_replies(replies)

    # When its own transport sends it a reply
    await transport.send_reply(inbox.address, reply(1))

    # Then it arrives
    await eventually(lambda: replies.got, timeout=5.0, what="the reply")
    assert replies.ids == ["reply-1"]


async def test_a_burst_of_replies_arrives_whole_and_in_order(
    open_transport: OpenTransport,
) -> None:
    # Given an inbox, and another transport sending it many replies at once
    owner = await open_transport(poll_interval=NO_POLL)
    sender = await open_transport()
    replies = Replies()
    inbox = await owner.open_replies(replies)

    # When 600 replies are sent concurrently (committed together, taken in batches)
    await asyncio.gather(*(sender.send_reply(inbox.address, reply(n)) for n in range(600)))

    # Then each arrives once, in the order sent
    await eventually(lambda: len(replies.got) >= 600, timeout=10.0, what="600 replies")
    assert replies.ids == [f"reply-{n}" for n in range(600)]


async def test_a_failing_on_reply_does_not_stop_the_inbox(
    open_transport: OpenTransport, caplog: pytest.LogCaptureFixture
) -> None:
    # Given an inbox whose callback fails on its first reply
    transport = await open_transport()
    got: list[str | None] = []

    def on_reply(delivery: Delivery) -> None:
        got.append(delivery.id)
        if len(got) == 1:
            raise RuntimeError("the caller's callback broke")

    inbox = await transport.open_replies(on_reply)

    # When two replies come, one after the other
    await transport.send_reply(inbox.address, reply(1))
    await eventually(lambda: got, what="the first reply")
    await transport.send_reply(inbox.address, reply(2))

    # Then the second still arrives, and the failure was logged
    await eventually(lambda: len(got) == 2, what="the second reply")
    assert got == ["reply-1", "reply-2"]
    assert "on_reply failed on reply-1" in caplog.text


async def test_replies_to_a_closed_or_unknown_inbox_are_dropped_without_an_error(
    open_transport: OpenTransport,
) -> None:
    # Given an inbox that was closed (twice, which is safe)
    transport = await open_transport()
    replies = Replies()
    inbox = await transport.open_replies(replies)
    await inbox.close()
    await inbox.close()

    # When replies are sent to it and to an address no inbox ever had
    await transport.send_reply(inbox.address, reply(1))
    await transport.send_reply(ADDRESS, reply(2))

    # Then nothing is stored and nothing arrives
    db = sqlite_path(transport.url)
    assert (rows(db, "inboxes"), rows(db, "replies")) == (0, 0)
    assert replies.got == []


async def test_an_inbox_belongs_to_its_bus_name(open_transport: OpenTransport) -> None:
    # Given an inbox of the bus "shop", and a bus of another name on the same file
    shop = await open_transport(name="shop")
    billing = await open_transport(name="billing")
    replies = Replies()
    inbox = await shop.open_replies(replies)

    # When the other bus sends a reply to its address, then the shop does
    await billing.send_reply(inbox.address, reply(1))
    await shop.send_reply(inbox.address, reply(2))

    # Then only the shop's reply arrives
    await eventually(lambda: replies.got, what="the shop's reply")
    assert replies.ids == ["reply-2"]
    assert rows(sqlite_path(shop.url), "replies") == 0


async def test_closing_an_inbox_removes_the_replies_waiting_in_it(
    open_transport: OpenTransport,
) -> None:
    # Given two inboxes that take nothing unless told to (no wake-ups, no polls in time)
    owner = await open_transport(wake=False, poll_interval=NO_POLL)
    sender = await open_transport()
    replies = Replies()
    closing, staying = await owner.open_replies(replies), await owner.open_replies(replies)
    db = sqlite_path(owner.url)

    # And replies waiting in both
    for n in range(3):
        await sender.send_reply(closing.address, reply(n))
    await sender.send_reply(staying.address, reply(9))
    assert (rows(db, "inboxes"), rows(db, "replies")) == (2, 4)

    # When one inbox is closed
    await closing.close()

    # Then it and its replies are gone, and the other inbox keeps its reply
    assert (rows(db, "inboxes"), rows(db, "replies")) == (1, 1)
    assert replies.got == []

    # And closing the transport closes the other inbox
    await owner.close()
    assert (rows(db, "inboxes"), rows(db, "replies")) == (0, 0)


async def test_an_inbox_needs_an_open_transport(open_transport: OpenTransport) -> None:
    transport = await open_transport()
    await transport.close()
    with pytest.raises(StateError):
        await transport.open_replies(Replies())
    with pytest.raises(StateError):
        await transport.send_reply(ADDRESS, reply(1))


async def test_inboxes_are_not_groups(open_transport: OpenTransport) -> None:
    # Given a group and an inbox with a reply waiting in it
    transport = await open_transport(wake=False, poll_interval=NO_POLL)
    await transport.declare([GroupSpec("pricing", ("price.*",))])
    inbox = await transport.open_replies(Replies())
    await transport.send_reply(inbox.address, reply(1))
    await eventually(lambda: rows(sqlite_path(transport.url), "replies") == 0, what="taken")

    # Then the stats show the group only
    assert [s.group for s in await transport.stats()] == ["pricing"]


async def test_replies_stay_in_files_only_their_owner_can_read(
    open_transport: OpenTransport, tmp_path: Path
) -> None:
    # Given a new file with an inbox (that takes nothing in time) and a reply waiting in it
    transport = await open_transport(wake=False, poll_interval=NO_POLL)
    sender = await open_transport()
    inbox = await transport.open_replies(Replies())
    await sender.send_reply(inbox.address, reply(1))

    # Then the reply is in the broker's files, which are private, and in no other file
    db = sqlite_path(transport.url)
    assert rows(db, "replies") == 1
    assert modes(tmp_path) == {"bus.db": 0o600, "bus.db-shm": 0o600, "bus.db-wal": 0o600}


@pytest.mark.slow
async def test_an_idle_inbox_uses_almost_no_cpu(open_transport: OpenTransport) -> None:
    transport = await open_transport()
    await transport.open_replies(Replies())
    await asyncio.sleep(0.1)  # let it settle into its idle wait

    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.sleep(1.5)  # measuring a period of idleness, not waiting for an event
    used = (time.process_time() - cpu) / (time.monotonic() - wall)

    assert used < 0.05, f"{used:.1%} of a CPU while idle"
