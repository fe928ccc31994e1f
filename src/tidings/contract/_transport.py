"""Contract: the `Transport` protocol itself, where the pipeline cannot reach."""

from __future__ import annotations

import pytest

from .._exceptions import DeadLetterNotFound, NotSupported
from ..transports._failure import Failure, RawDeadLetter
from ..transports._group import GroupSpec
from ..transports._message import Delivery, OutgoingMessage
from ..transports._transport import CAP_DEDUPE, CAP_REPLAY_LOG, Transport
from ._harness import Harness, Inbox, group_stats
from ._requests import ReplyTransportContract

__all__ = ["TransportContract"]


HOUR = 3600.0


def message(
    n: int | str,
    type: str = "order.placed",
    *,
    key: str | None = None,
    group: str | None = None,
    delay: float = 0.0,
) -> OutgoingMessage:
    """A small plain-JSON message with id ``m-<n>``."""
    return OutgoingMessage(
        id=f"m-{n}",
        type=type,
        body=b'{"n": "%s"}' % str(n).encode(),
        content_type="application/json",
        key=key,
        group=group,
        delay=delay,
    )


def _failure(harness: Harness, reason: str) -> Failure:
    return Failure(
        reason=reason,
        exception_type="builtins.ValueError",
        message=reason,
        traceback="Traceback (most recent call last):\nValueError: " + reason,
        at=harness.now(),
    )


async def _consume(
    harness: Harness, transport: Transport, spec: GroupSpec, *, auto_ack: bool = False
) -> Inbox:
    inbox = Inbox(transport, auto_ack=auto_ack)
    await transport.consume(spec, inbox)
    return inbox


class TransportContract(ReplyTransportContract):
    """Routing results, delivery fields, settlement, the in-flight window, ordered keys,
    shutdown, the raw DLQ operations, delayed publishing, capabilities, closing, and reply
    inboxes."""

    async def test_publish_reports_per_message_whether_a_group_received_it(
        self, harness: Harness
    ) -> None:
        # Unroutable ignored, so the routable messages of the call are stored everywhere
        # (BatchContract covers calls refused whole).
        t = await harness.make_transport(on_unroutable="ignore")
        await t.declare([GroupSpec("orders", ("order.*",)), GroupSpec("all", ("#",))])
        await t.declare([GroupSpec("orders", ("order.*",))])  # declaring again is harmless
        routed = await t.publish(
            [
                message(1, "order.placed"),
                message(2, "payment.charge"),
                message(3, "payment.charge", group="orders"),
                message(4, "order.placed", group="missing"),
            ]
        )
        assert routed == [True, True, True, False]
        orders = await group_stats(t, "orders")
        everything = await group_stats(t, "all")
        assert orders.ready == 2  # m-1 by pattern, m-3 sent to the group
        assert everything.ready == 2  # m-1, m-2 by pattern ('#'), not m-3

    async def test_a_delivery_carries_what_was_published(self, harness: Harness) -> None:
        t = await harness.make_transport()
        spec = GroupSpec("orders", ("order.*",))
        await t.declare([spec])
        published = OutgoingMessage(
            id="m-1",
            type="order.placed",
            body=b'{"order_id": "o-1"}',
            content_type="application/json",
            headers={"x-tenant": "acme"},
            key="u-1",
        )
        assert await t.publish([published]) == [True]
        inbox = await _consume(harness, t, spec)
        await harness.wait_until(lambda: len(inbox.got) == 1, what="one delivery")
        (d,) = inbox.got
        assert (d.group, d.id, d.type, d.body) == ("orders", "m-1", "order.placed", published.body)
        assert d.content_type == "application/json"
        assert dict(d.headers) == {"x-tenant": "acme"}
        assert d.key == "u-1"
        assert d.attempt == 1 and d.replayed is False and d.first_failed_at is None
        assert (await group_stats(t, "orders")).in_flight == 1
        inbox.ack(d)
        await harness.settled(t, "orders")

    async def test_retry_later_counts_attempts_keeps_first_failure_then_dead_letter(
        self, harness: Harness
    ) -> None:
        t = await harness.make_transport()
        spec = GroupSpec("orders", ("order.*",))
        await t.declare([spec])
        await t.publish([message(1, key="k")])
        inbox = await _consume(harness, t, spec)
        failures: list[Failure] = []

        async def retry(d: Delivery) -> None:
            failure = _failure(harness, f"failed attempt {d.attempt}")
            failures.append(failure)
            await t.retry_later(d, 0.01, failure)

        for attempt in (1, 2):
            await harness.wait_until(
                lambda a=attempt: len(inbox.got) == a,  # type: ignore[misc]
                what=f"attempt {attempt}",
            )
            delivery = inbox.got[-1]
            assert delivery.attempt == attempt
            inbox.settle(delivery, retry)
        await harness.wait_until(lambda: len(inbox.got) == 3, what="attempt 3")
        third = inbox.got[-1]
        assert third.attempt == 3
        assert third.id == "m-1" and third.key == "k"
        assert third.first_failed_at is not None
        assert abs(third.first_failed_at - failures[0].at) < 1.0
        last = _failure(harness, "gave up")

        async def dead(d: Delivery) -> None:
            await t.dead_letter(d, last)

        inbox.settle(third, dead)

        async def one_dead() -> bool:
            return len(await t.dlq_list("orders", 10, 0)) == 1

        await harness.wait_until(one_dead, what="the dead letter")
        await harness.settled(t, "orders")
        (entry,) = await t.dlq_list("orders", 10, 0)
        assert isinstance(entry, RawDeadLetter)
        assert (entry.group, entry.id, entry.key) == ("orders", "m-1", "k")
        assert entry.type == "order.placed"
        assert entry.body == message(1).body
        assert entry.reason == "gave up" and entry.message == "gave up"
        assert entry.exception_type == "builtins.ValueError"
        assert "ValueError: gave up" in entry.traceback
        assert entry.attempts == 3
        assert abs(entry.first_failed_at - failures[0].at) < 1.0
        assert abs(entry.last_failed_at - last.at) < 1.0
        assert await t.dlq_get("orders", entry.entry_id) == entry
        stats = await group_stats(t, "orders")
        assert (stats.ready, stats.in_flight, stats.scheduled, stats.dead) == (0, 0, 0, 1)

    async def test_a_consumer_holds_at_most_concurrency_unsettled_deliveries(
        self, harness: Harness
    ) -> None:
        t = await harness.make_transport()
        spec = GroupSpec("orders", ("order.*",), concurrency=2)
        await t.declare([spec])
        await t.publish([message(n) for n in range(5)])
        inbox = await _consume(harness, t, spec)

        async def window_full() -> bool:
            s = await group_stats(t, "orders")
            return s.in_flight == 2 and s.ready == 3 and len(inbox.got) >= 2

        await harness.wait_until(window_full, what="two in flight, three ready")
        assert len(inbox.got) == 2
        inbox.ack(inbox.got[0])
        await harness.wait_until(lambda: len(inbox.got) == 3, what="a third after one ack")
        assert len(inbox.held()) == 2

        def ack_held_until_all_came() -> bool:
            for d in inbox.held():
                inbox.ack(d)
            return len(inbox.got) == 5

        await harness.wait_until(ack_held_until_all_came, what="the rest")
        for d in inbox.held():
            inbox.ack(d)
        await harness.settled(t, "orders")
        assert sorted(d.id or "" for d in inbox.got) == [f"m-{n}" for n in range(5)]

    async def test_an_ordered_group_hands_out_one_delivery_per_key(self, harness: Harness) -> None:
        t = await harness.make_transport()
        spec = GroupSpec("ledger", ("order.*",), concurrency=8, ordered=True)
        await t.declare([spec])
        await t.publish([message("a1", key="a"), message("a2", key="a"), message("b1", key="b")])
        inbox = await _consume(harness, t, spec)

        async def two_in_flight() -> bool:
            return (await group_stats(t, "ledger")).in_flight == 2 and len(inbox.got) >= 2

        await harness.wait_until(two_in_flight, what="the head of each key")
        assert sorted(d.id or "" for d in inbox.got) == ["m-a1", "m-b1"]
        (head_a,) = [d for d in inbox.got if d.id == "m-a1"]
        inbox.ack(head_a)
        await harness.wait_until(lambda: len(inbox.got) == 3, what="a2 after a1")
        assert inbox.got[-1].id == "m-a2"
        for d in inbox.held():
            inbox.ack(d)
        await harness.settled(t, "ledger")

    async def test_stopping_a_consumer_returns_unsettled_deliveries_with_attempt_counted(
        self, harness: Harness
    ) -> None:
        t = await harness.make_transport(lease=1.0)
        spec = GroupSpec("orders", ("order.*",))
        await t.declare([spec])
        await t.publish([message(1)])
        first = Inbox(t)
        consumer = await t.consume(spec, first)
        await harness.wait_until(lambda: len(first.got) == 1, what="the delivery")
        await consumer.stop(0.05)  # the callback never settles: it is cancelled
        second = await _consume(harness, t, spec, auto_ack=True)
        await harness.wait_until(lambda: len(second.got) == 1, what="the redelivery")
        await harness.settled(t, "orders")
        assert second.got[0].id == "m-1"
        assert second.got[0].attempt == 2

    async def test_raw_dead_letters_get_replay_and_purge(self, harness: Harness) -> None:
        t = await harness.make_transport()
        specs = [GroupSpec("orders", ("order.*",)), GroupSpec("audit", ("#",))]
        await t.declare(specs)
        await t.publish([message(n) for n in range(3)])
        orders = await _consume(harness, t, specs[0])
        audit = await _consume(harness, t, specs[1], auto_ack=True)

        async def to_dlq(d: Delivery) -> None:
            await t.dead_letter(d, _failure(harness, "bad"))

        await harness.wait_until(lambda: len(orders.got) == 3, what="three deliveries")
        for d in list(orders.got):
            orders.settle(d, to_dlq)
        await harness.settled(t)
        entries = await t.dlq_list("orders", 10, 0)
        assert sorted(e.id or "" for e in entries) == ["m-0", "m-1", "m-2"]
        assert [e.entry_id for e in await t.dlq_list("orders", 2, 1)] == [
            e.entry_id for e in entries[1:3]
        ]
        with pytest.raises(DeadLetterNotFound):
            await t.dlq_get("orders", "no-such-entry")
        # Replay one: it goes back to `orders` only, as rebuilt, and leaves the DLQ
        chosen = entries[0]

        def rebuild(raw: RawDeadLetter) -> OutgoingMessage:
            return OutgoingMessage(
                id=raw.id or "",
                type=raw.type,
                body=raw.body,
                content_type=raw.content_type or "application/json",
                headers={"x-replayed-by": "contract"},
                key=raw.key,
                group=raw.group,
            )

        assert await t.dlq_replay("orders", [chosen.entry_id], rebuild) == 1
        await harness.wait_until(lambda: len(orders.got) == 4, what="the replayed message")
        replayed = orders.got[-1]
        assert (replayed.id, replayed.attempt) == (chosen.id, 1)
        assert dict(replayed.headers) == {"x-replayed-by": "contract"}
        orders.ack(replayed)
        await harness.settled(t)
        assert len(audit.got) == 3  # not routed by pattern again
        with pytest.raises(DeadLetterNotFound):
            await t.dlq_get("orders", chosen.entry_id)
        # Purge one, then the rest
        remaining = await t.dlq_list("orders", 10, 0)
        assert len(remaining) == 2
        assert await t.dlq_purge("orders", [remaining[0].entry_id]) == 1
        assert await t.dlq_purge("orders", None) == 1
        assert await t.dlq_list("orders", 10, 0) == []
        assert (await group_stats(t, "orders")).dead == 0

    async def test_a_delayed_message_is_scheduled_then_delivered(self, harness: Harness) -> None:
        t = await harness.make_transport()
        spec = GroupSpec("orders", ("order.*",))
        await t.declare([spec])
        await t.publish([message(1, delay=HOUR), message(2, delay=0.2)])
        stats = await group_stats(t, "orders")
        assert (stats.ready, stats.scheduled) == (0, 2)
        inbox = await _consume(harness, t, spec, auto_ack=True)
        await harness.wait_until(lambda: len(inbox.got) == 1, what="the short delay")
        assert inbox.got[0].id == "m-2"

        async def one_left() -> bool:
            stats = await group_stats(t, "orders")
            return (stats.ready, stats.in_flight, stats.scheduled) == (0, 0, 1)

        await harness.wait_until(one_left, what="the long delay to stay scheduled")
        assert len(inbox.got) == 1

    async def test_replay_from_the_log_or_not_supported(self, harness: Harness) -> None:
        t = await harness.make_transport(on_unroutable="ignore")
        spec = GroupSpec("orders", ("order.*",))
        await t.declare([spec])
        since = harness.now() - 1.0
        await t.publish([message(1), message(2), message(3, "payment.charge")])
        if CAP_REPLAY_LOG not in t.capabilities:
            with pytest.raises(NotSupported):
                await t.replay("orders", since)
            return
        inbox = await _consume(harness, t, spec, auto_ack=True)
        await harness.wait_until(lambda: len(inbox.got) == 2, what="two deliveries")
        await harness.settled(t)
        assert await t.replay("orders", since) == 2
        await harness.wait_until(lambda: len(inbox.got) == 4, what="two replayed")
        await harness.settled(t)
        again = inbox.got[2:]
        assert sorted(d.id or "" for d in again) == ["m-1", "m-2"]
        assert all(d.replayed for d in again)

    async def test_the_dedupe_store_remembers_per_group_until_expiry(
        self, harness: Harness
    ) -> None:
        t = await harness.make_transport()
        store = t.dedupe_store()
        if CAP_DEDUPE not in t.capabilities:
            assert store is None
            return
        assert store is not None
        assert not await store.seen("orders", "e-1")
        await store.mark("orders", "e-1", 0.2)
        assert await store.seen("orders", "e-1")
        assert not await store.seen("audit", "e-1")
        assert not await store.seen("orders", "e-2")

        async def expired() -> bool:
            harness.advance(0.1)
            return not await store.seen("orders", "e-1")

        await harness.wait_until(expired, what="the marker to expire")

    async def test_close_is_idempotent(self, harness: Harness) -> None:
        t = await harness.make_transport()
        await t.declare([GroupSpec("orders", ("order.*",))])
        await t.close()
        await t.close()
