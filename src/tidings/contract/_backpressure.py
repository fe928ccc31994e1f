"""Contract: what a publish stores when it cannot all go — batches holding an unroutable
event, groups at their ``max_ready`` bound."""

from __future__ import annotations

from typing import Any

import pytest

from .._core.bus import Bus
from .._core.context import Context
from .._core.middleware import Middleware, Publication, PublishNext
from .._exceptions import NotSupported, QueueFull, Unroutable
from ..transports import CAP_ATOMIC_BATCH, CAP_REPLAY_LOG, GroupSpec, OutgoingMessage
from ._events import NobodyListens, OrderPlaced
from ._harness import FixedDelay, Harness, Inbox

__all__ = ["BatchContract", "BoundContract"]


class _PassOn(Middleware):
    """A publish hook that only passes each message on (batches then meet in the stack)."""

    async def publish(self, message: Publication, call_next: PublishNext) -> str:
        return await call_next(message)


def _message(n: int, type_: str = "order.placed") -> OutgoingMessage:
    return OutgoingMessage(f"m-{n}", type_, b"{}", "application/json")


class BatchContract:
    """A batch holding an unroutable event: stored whole or not at all (`CAP_ATOMIC_BATCH`),
    or `Unroutable` names exactly the ids that went; an unroutable event is never kept in a
    retained log."""

    @pytest.mark.parametrize("hooks", [False, True], ids=["plain", "with-hooks"])
    async def test_a_batch_with_an_unroutable_event_goes_whole_or_says_what_went(
        self, harness: Harness, hooks: bool
    ) -> None:
        bus = harness.make_bus(middleware=[_PassOn()] if hooks else [])
        got: list[str] = []

        @bus.subscribe("order.placed", group="inventory")
        async def reserve(event: OrderPlaced, ctx: Context) -> None:
            got.append(ctx.event_id)

        await bus.start()
        # When a batch holds one event nobody subscribes to among routable ones
        with pytest.raises(Unroutable) as caught:
            await bus.publish_many(
                [OrderPlaced(order_id="o-1"), NobodyListens(), OrderPlaced(order_id="o-2")]
            )
        # (then a last event, so the group has had everything once it is handled)
        last = await bus.publish(OrderPlaced(order_id="last"))
        await harness.wait_until(lambda: last in got, what="the last event")
        await harness.settled(bus)
        error = caught.value
        delivered = [event_id for event_id in got if event_id != last]
        # Then the unroutable one is named, and the error says exactly what went out
        assert "nobody.listens" in str(error)
        assert len(error.unroutable_ids) == 1
        assert error.unroutable_ids[0] not in delivered
        if CAP_ATOMIC_BATCH in bus.transport.capabilities:
            assert (error.sent_ids, delivered) == ([], [])
        else:
            assert len(error.sent_ids) == 2
            assert sorted(delivered) == sorted(error.sent_ids)

    async def test_a_transport_call_holding_an_unroutable_message(self, harness: Harness) -> None:
        t = await harness.make_transport()  # on_unroutable="error", the bus's default
        spec = GroupSpec("orders", ("order.*",))
        await t.declare([spec])
        inbox = Inbox(t, auto_ack=True)
        await t.consume(spec, inbox)
        # The flags say which messages were routable, whether or not the call was stored
        routed = await t.publish([_message(1), _message(2, "nobody.listens"), _message(3)])
        assert routed == [True, False, True]
        assert await t.publish([_message(4)]) == [True]
        await harness.wait_until(lambda: "m-4" in inbox.ids, what="the last message")
        await harness.settled(t)
        stored = sorted(i or "" for i in inbox.ids if i != "m-4")
        assert stored == ([] if CAP_ATOMIC_BATCH in t.capabilities else ["m-1", "m-3"])

    async def test_replay_never_brings_back_an_unroutable_event(self, harness: Harness) -> None:
        # Given events published while only "audit" listened to order.placed: routed ones,
        # refused ones, and unroutable ones a bus ignores
        publisher = harness.make_bus()

        @publisher.subscribe("order.placed", group="audit")
        async def record(event: OrderPlaced) -> None:
            return None

        ignoring = harness.make_bus(on_unroutable="ignore")
        await publisher.start()
        await ignoring.start()
        kept = [await publisher.publish(OrderPlaced(order_id="kept"))]
        with pytest.raises(Unroutable):
            await publisher.publish(NobodyListens(note="refused"))
        with pytest.raises(Unroutable) as caught:
            await publisher.publish_many([OrderPlaced(order_id="batch"), NobodyListens()])
        kept += caught.value.sent_ids
        await ignoring.publish(NobodyListens(note="ignored"))
        beside, _ = await ignoring.publish_many([OrderPlaced(order_id="beside"), NobodyListens()])
        kept.append(beside)
        # When a group taking every type starts later and replays the retained log
        late = harness.make_bus()
        replayed: list[tuple[str, str]] = []

        @late.subscribe("#", group="late")
        async def everything(event: dict[str, Any], ctx: Context) -> None:
            replayed.append((ctx.envelope.type, ctx.event_id))

        await late.start()
        if CAP_REPLAY_LOG not in late.transport.capabilities:
            with pytest.raises(NotSupported):
                await late.replay("late", "1h")
            return
        moved = await late.replay("late", "1h")
        await harness.wait_until(lambda: len(replayed) >= len(kept), what="the replayed events")
        await harness.settled(late)
        # Then only the events that reached a group came back
        assert moved == len(kept)
        assert sorted(replayed) == sorted(("order.placed", event_id) for event_id in kept)


async def _started_with_bounds(bus: Bus) -> bool:
    """Start `bus` (whose group has a ``max_ready`` bound): True when the transport takes
    bounds; False when it refuses them, as a transport without bounds must, with a
    `NotSupported` naming ``max_ready`` when the group is declared."""
    try:
        await bus.start()
    except NotSupported as exc:
        assert "max_ready" in str(exc)
        return False
    return True


class BoundContract:
    """``max_ready``: a publish past the bound raises `QueueFull` at once; retries of
    accepted events are never dropped. The harness's `bounded_bus_options` are given to
    every bus with a bounded group."""

    def _bus(
        self,
        harness: Harness,
        log: list[tuple[str, int]] | None,
        *,
        consume: bool = True,
        fail_first: bool = False,
    ) -> Bus:
        """A bus with the bounded group (three ready at most); its handler records
        (event id, attempt) in `log` and fails every first attempt when asked to."""
        bus = harness.make_bus(consume=consume, **harness.bounded_bus_options)

        @bus.subscribe(
            "order.placed",
            group="bounded",
            max_ready=3,
            retry=FixedDelay(attempts=3, base=1.5),
        )
        async def reserve(event: OrderPlaced, ctx: Context) -> None:
            if log is not None:
                log.append((ctx.event_id, ctx.attempt))
            if fail_first and ctx.attempt == 1:
                raise ConnectionError("upstream down")

        return bus

    async def test_a_publish_past_the_bound_raises_queue_full_until_consumers_catch_up(
        self, harness: Harness
    ) -> None:
        # Given a bounded group that nobody consumes yet
        producer = self._bus(harness, None, consume=False)
        if not await _started_with_bounds(producer):
            return
        accepted = [await producer.publish(OrderPlaced(order_id=f"o-{n}")) for n in range(3)]
        # When one more event comes
        with pytest.raises(QueueFull) as caught:
            await producer.publish(OrderPlaced(order_id="refused"), id="refused")
        # Then it is refused at once, naming the full group
        assert caught.value.groups == ["bounded"]
        assert "bounded" in str(caught.value)
        # And once a worker has drained the group, publishing works again
        handled: list[tuple[str, int]] = []
        worker = self._bus(harness, handled)
        await worker.start()
        await harness.wait_until(lambda: len(handled) >= 3, what="the worker to drain")
        accepted.append(await producer.publish(OrderPlaced(order_id="o-3")))
        await harness.wait_until(lambda: len(handled) >= 4, what="the next event")
        await harness.settled(worker)
        assert sorted(event_id for event_id, _ in handled) == sorted(accepted)

    async def test_retries_of_accepted_events_return_even_to_a_full_group(
        self, harness: Harness
    ) -> None:
        # Given three accepted events whose first attempts failed on a worker that stopped
        producer = self._bus(harness, None, consume=False)
        if not await _started_with_bounds(producer):
            return
        failed = [await producer.publish(OrderPlaced(order_id=f"o-{n}")) for n in range(3)]
        first_runs: list[tuple[str, int]] = []
        first = self._bus(harness, first_runs, fail_first=True)
        await first.start()
        await harness.wait_until(lambda: len(first_runs) >= 3, what="three failed attempts")
        due = harness.now() + 1.5
        await first.close()
        # When the group fills up with new events while their retries wait
        fresh = [await producer.publish(OrderPlaced(order_id=f"n-{n}")) for n in range(3)]
        with pytest.raises(QueueFull):
            await producer.publish(OrderPlaced(order_id="refused"))
        # and the retries come due while it is full
        harness.advance(1.5)
        await harness.wait_until(lambda: harness.now() >= due, what="the retries to be due")
        handled: list[tuple[str, int]] = []
        second = self._bus(harness, handled)
        await second.start()
        await harness.wait_until(lambda: len(handled) >= 6, what="six events")
        await harness.settled(second)
        # Then nothing was dropped: every accepted event was handled, the retried ones with
        # their attempt counted, and nothing was dead-lettered
        assert sorted(first_runs) == sorted((event_id, 1) for event_id in failed)
        assert sorted(handled) == sorted(
            [(event_id, 2) for event_id in failed] + [(event_id, 1) for event_id in fresh]
        )
        assert await second.dead_letters("bounded").list() == []
