"""The embedded broker through the transport contract: publish, fan-out, settle, DLQ,
replay, dedupe and stats, in one process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

import pytest

from tests.support import Inbox, eventually
from tidings import ConfigError, DeadLetterNotFound
from tidings.transports import (
    CAP_DEDUPE,
    CAP_REPLAY_LOG,
    Delivery,
    GroupSpec,
    OutgoingMessage,
    RawDeadLetter,
)
from tidings.transports.sqlite import SqliteTransport

from .conftest import OpenTransport, failure, message

ORDERS = GroupSpec("orders", ("order.*",))


async def _equals(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def test_published_messages_are_delivered_with_their_attributes_and_acked(
    transport: SqliteTransport,
) -> None:
    # Given a declared group with a consumer
    await transport.declare([ORDERS])
    inbox = Inbox(transport, auto_ack=True)
    consumer = await transport.consume(ORDERS, inbox)

    # When three messages are published in one call
    sent = [
        message(body=b'{"n": 1}', key="user-1", headers={"ce-type": "order.placed"}),
        message(body=b'{"n": 2}', content_type="application/json"),
        message(type="order.shipped", body=b"\x00\xff"),
    ]
    routed = await transport.publish(sent)

    # Then each reached the group, and the consumer got it once with its attributes
    assert routed == [True, True, True]
    await eventually(lambda: len(inbox.got) == 3, what="three deliveries")
    by_id = {d.id: d for d in inbox.got}
    for m in sent:
        d = by_id[m.id]
        assert (d.group, d.type, d.body, d.key) == ("orders", m.type, m.body, m.key)
        assert (d.content_type, dict(d.headers)) == (m.content_type, dict(m.headers))
        assert (d.attempt, d.replayed, d.first_failed_at) == (1, False, None)
    await consumer.stop(1.0)
    [stats] = await transport.stats()
    assert (stats.ready, stats.in_flight, stats.scheduled) == (0, 0, 0)


async def test_the_transport_names_its_scheme_and_capabilities() -> None:
    assert SqliteTransport.scheme == "sqlite"
    assert {CAP_REPLAY_LOG, CAP_DEDUPE} <= SqliteTransport.capabilities


async def test_an_event_fans_out_to_every_group_with_a_matching_pattern(
    transport: SqliteTransport,
) -> None:
    # Given three groups, two of which match order.placed
    await transport.declare(
        [ORDERS, GroupSpec("audit", ("#",)), GroupSpec("payments", ("payment.*",))]
    )

    # When one order.placed and one type nobody wants are published
    routed = await transport.publish([message(), message(type="user.deleted.soon")])

    # Then the event waits once in each matching group and nowhere else
    assert routed == [True, True]  # "#" takes everything
    stats = {s.group: s for s in await transport.stats()}
    assert {name: s.ready for name, s in stats.items()} == {
        "audit": 2,
        "orders": 1,
        "payments": 0,
    }


async def test_a_group_only_message_skips_routing(transport: SqliteTransport) -> None:
    # Given two groups that both match order.placed
    await transport.declare([ORDERS, GroupSpec("audit", ("order.#",))])

    # When a message is sent to one group, to a missing group, and one matches nothing
    routed = [
        await transport.publish([m])
        for m in (message(group="audit"), message(group="nobody"), message(type="nothing.here"))
    ]

    # Then only the named group got it; the others were not routed
    assert routed == [[True], [False], [False]]
    stats = {s.group: s.ready for s in await transport.stats()}
    assert stats == {"audit": 1, "orders": 0}


async def test_a_delayed_publish_waits_as_scheduled(transport: SqliteTransport) -> None:
    await transport.declare([ORDERS])
    inbox = Inbox(transport, auto_ack=True)
    await transport.consume(ORDERS, inbox)

    started = time.monotonic()
    await transport.publish([message(delay=0.3)])
    [stats] = await transport.stats()
    assert (stats.scheduled, stats.ready) == (1, 0)

    await eventually(lambda: inbox.got, what="the delayed delivery")
    assert inbox.times[0] - started >= 0.3


async def test_retry_later_redelivers_after_the_delay_with_the_next_attempt(
    transport: SqliteTransport,
) -> None:
    # Given a consumer that asks for a retry on the first attempt
    await transport.declare([ORDERS])
    first_failure = failure(at=time.time() - 5)

    async def settle(d: Delivery) -> None:
        if d.attempt == 1:
            await transport.retry_later(d, 0.3, first_failure)
        elif d.attempt == 2:
            await transport.retry_later(d, 0.0, failure())
        else:
            await transport.ack(d)

    inbox = Inbox(transport, settle_with=settle)
    await transport.consume(ORDERS, inbox)

    # When a message is published
    await transport.publish([message()])

    # Then it is scheduled after the first failure, and comes back with attempt 2, then 3
    await eventually(lambda: len(inbox.got) == 3, what="three attempts")
    assert [d.attempt for d in inbox.got] == [1, 2, 3]
    assert inbox.times[1] - inbox.times[0] >= 0.3
    # the first failure time is kept across retries
    assert inbox.got[1].first_failed_at == pytest.approx(first_failure.at)
    assert inbox.got[2].first_failed_at == pytest.approx(first_failure.at)


async def test_dead_letters_can_be_listed_fetched_replayed_and_purged(
    transport: SqliteTransport,
) -> None:
    # Given a consumer that dead-letters attempt 1 and acks later ones
    await transport.declare([ORDERS])

    async def settle(d: Delivery) -> None:
        if d.attempt == 1 and not d.replayed:
            await transport.dead_letter(d, failure(reason=f"ValueError: {d.body.decode()}"))
        else:
            await transport.ack(d)

    inbox = Inbox(transport, settle_with=settle)
    await transport.consume(ORDERS, inbox)
    sent = [message(body=f"n{i}".encode(), key=f"k{i}", headers={"h": str(i)}) for i in range(4)]
    for m in sent:  # one by one, so the DLQ order is the publish order
        await transport.publish([m])
        await eventually(lambda m=m: m.id in inbox.ids)

    # When the DLQ is listed
    async def four_dead() -> bool:
        return sum(s.dead for s in await transport.stats()) == 4

    await eventually(four_dead, what="four dead letters")
    entries = await transport.dlq_list("orders", limit=10, offset=0)

    # Then it shows every entry, oldest first, with the failure and the message
    assert [e.id for e in entries] == [m.id for m in sent]
    first = entries[0]
    assert (first.group, first.type, first.body, first.key) == (
        "orders",
        "order.placed",
        b"n0",
        "k0",
    )
    assert dict(first.headers) == {"h": "0"}
    assert (first.reason, first.exception_type, first.attempts) == (
        "ValueError: n0",
        "builtins.ValueError",
        1,
    )
    assert first.first_failed_at <= first.last_failed_at
    assert [e.id for e in await transport.dlq_list("orders", limit=2, offset=1)] == [
        sent[1].id,
        sent[2].id,
    ]
    assert await transport.dlq_get("orders", first.entry_id) == first
    with pytest.raises(DeadLetterNotFound):
        await transport.dlq_get("orders", "no-such-entry")
    with pytest.raises(DeadLetterNotFound):
        await transport.dlq_get("other-group", first.entry_id)

    # When one entry is replayed with an edited body
    def rebuild(entry: RawDeadLetter) -> OutgoingMessage:
        return OutgoingMessage(
            id=entry.id or "", type=entry.type, body=entry.body + b"-fixed", key=entry.key,
            headers=entry.headers, replayed=True,
        )  # fmt: skip

    moved = await transport.dlq_replay("orders", [first.entry_id, "no-such-entry"], rebuild)

    # Then it goes back to the group only, with attempt 1, and leaves the DLQ
    assert moved == 1
    await eventually(lambda: len(inbox.got) == 5, what="the replayed delivery")
    again = inbox.got[-1]
    assert (again.id, again.body, again.attempt, again.replayed) == (
        sent[0].id,
        b"n0-fixed",
        1,
        True,
    )
    assert [e.id for e in await transport.dlq_list("orders", 10, 0)] == [m.id for m in sent[1:]]

    # When one entry is purged, then all the rest are replayed
    assert await transport.dlq_purge("orders", [entries[1].entry_id]) == 1
    assert await transport.dlq_replay("orders", None, rebuild) == 2
    await eventually(lambda: len(inbox.got) == 7, what="two more replays")
    assert sorted(d.id or "" for d in inbox.got[5:]) == sorted([sent[2].id, sent[3].id])
    assert await transport.dlq_list("orders", 10, 0) == []
    assert await transport.dlq_purge("orders", None) == 0


async def test_purging_everything_empties_the_dlq(transport: SqliteTransport) -> None:
    await transport.declare([ORDERS])
    inbox = Inbox(transport, settle_with=lambda d: transport.dead_letter(d, failure()))
    await transport.consume(ORDERS, inbox)
    await transport.publish([message() for _ in range(3)])
    await eventually(lambda: len(inbox.got) == 3)

    async def dead() -> int:
        return len(await transport.dlq_list("orders", 10, 0))

    await eventually(lambda: _equals(dead(), 3), what="three dead letters")
    assert await transport.dlq_purge("orders", None) == 3
    assert await dead() == 0


async def test_replay_redelivers_retained_events_of_the_group_since_a_time(
    transport: SqliteTransport,
) -> None:
    # Given events published at different times, some for other groups
    await transport.declare([ORDERS, GroupSpec("other", ("order.*", "payment.*"))])
    now = time.time()
    old, recent = message(published_at=now - 100), message(published_at=now - 10)
    await transport.publish(
        [
            old,
            recent,
            message(type="payment.taken", published_at=now - 10),  # no orders pattern matches
            message(group="other", published_at=now - 10),  # sent to another group only
        ]
    )

    # When the group is replayed from a minute ago
    count = await transport.replay("orders", now - 60)

    # Then only the recent matching event comes again, marked as replayed
    assert count == 1
    inbox = Inbox(transport, auto_ack=True)
    await transport.consume(ORDERS, inbox)
    await eventually(lambda: len(inbox.got) == 3, what="two originals and one replay")
    replayed = [(d.id, d.attempt) for d in inbox.got if d.replayed]
    assert replayed == [(recent.id, 1)]
    assert sorted(d.id or "" for d in inbox.got if not d.replayed) == sorted([old.id, recent.id])
    with pytest.raises(ConfigError, match="nope"):
        await transport.replay("nope", 0.0)


async def test_the_dedupe_store_remembers_ids_per_group_until_they_expire(
    transport: SqliteTransport,
) -> None:
    store = transport.dedupe_store()
    assert not await store.seen("orders", "e1")

    await store.mark("orders", "e1", 60.0)
    await store.mark("orders", "short", 0.2)

    assert await store.seen("orders", "e1")
    assert not await store.seen("billing", "e1")
    assert await store.seen("orders", "short")
    await eventually(lambda: _equals(store.seen("orders", "short"), False), what="expiry")
    assert await store.seen("orders", "e1")


async def test_stats_count_each_state_of_a_group(open_transport: OpenTransport) -> None:
    transport = await open_transport()
    # Given a group with ready, in-flight, scheduled and dead deliveries and one consumer
    await transport.declare([ORDERS, GroupSpec("idle", ("idle.*",))])
    held: list[Delivery] = []

    async def settle(d: Delivery) -> None:
        if d.body == b"dead":
            await transport.dead_letter(d, failure())
        elif d.body == b"later":
            await transport.retry_later(d, 60.0, failure())
        elif d.body == b"ack":
            await transport.ack(d)
        else:
            held.append(d)
            await asyncio.Event().wait()  # stays in flight until the consumer stops

    spec = GroupSpec("orders", ("order.*",), concurrency=4)
    consumer = await transport.consume(spec, Inbox(transport, settle_with=settle))
    await transport.publish([message(body=b) for b in (b"dead", b"later", b"ack", b"hold", b"ack")])
    await eventually(lambda: len(held) == 1, what="the held delivery")

    async def settled() -> bool:
        s = {s.group: s for s in await transport.stats()}["orders"]
        return (s.dead, s.scheduled, s.in_flight, s.ready) == (1, 1, 1, 0)

    await eventually(settled, what="one dead, one scheduled, one in flight, none ready")
    await consumer.stop(0.0)  # the held one goes back to ready
    await transport.publish([message(body=b"more")])

    # When stats are read
    stats = {s.group: s for s in await transport.stats()}

    # Then each count is right, with rates over the recent window
    orders, idle = stats["orders"], stats["idle"]
    assert (orders.ready, orders.in_flight, orders.scheduled, orders.dead) == (2, 0, 1, 1)
    assert orders.consumers == 0
    assert orders.oldest_age >= 0.0
    assert orders.publish_rate and orders.publish_rate > 0
    assert orders.ack_rate and orders.ack_rate > 0
    assert orders.dead_recent == 1
    assert orders.alerts == ()
    assert (idle.ready, idle.dead, idle.publish_rate, idle.ack_rate) == (0, 0, 0.0, 0.0)
    await transport.ping()


async def test_redeclaring_a_group_replaces_its_bindings(transport: SqliteTransport) -> None:
    # Given a group bound to order.*
    await transport.declare([ORDERS])
    assert await transport.publish([message("order.placed")]) == [True]

    # When it is declared again with another pattern
    await transport.declare([GroupSpec("orders", ("invoice.*",))])

    # Then only the new pattern routes to it
    assert await transport.publish([message("order.placed")]) == [False]
    assert await transport.publish([message("invoice.sent")]) == [True]
    [stats] = await transport.stats()
    assert stats.ready == 2


async def test_a_failing_operation_does_not_fail_the_others_committed_with_it(
    transport: SqliteTransport,
) -> None:
    # Given many publishes and one bad replay queued at the same moment
    await transport.declare([ORDERS])
    calls = [transport.publish([message()]) for _ in range(20)]
    calls.insert(10, transport.replay("no-such-group", 0.0))

    # When they are group-committed together
    results = await asyncio.gather(*calls, return_exceptions=True)

    # Then only the replay failed, and every publish was confirmed and stored
    assert isinstance(results[10], ConfigError)
    assert [r for i, r in enumerate(results) if i != 10] == [[True]] * 20
    [stats] = await transport.stats()
    assert stats.ready == 20


async def test_stats_count_the_live_consumers(open_transport: OpenTransport) -> None:
    first, second = await open_transport(), await open_transport()
    await first.declare([ORDERS])
    one = await first.consume(ORDERS, Inbox(first, auto_ack=True))
    await second.consume(ORDERS, Inbox(second, auto_ack=True))

    [stats] = await first.stats()
    assert stats.consumers == 2

    await one.stop(1.0)
    [stats] = await second.stats()
    assert stats.consumers == 1
