"""Contract: routing and delivery as a user sees it through the `Bus`."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest

from .._core.bus import Bus
from .._core.context import Context
from .._core.retry import Retry
from .._exceptions import MessageTooLarge, Unroutable
from ..transports._message import OutgoingMessage
from ._events import (
    BigEvent,
    ChargeCard,
    NobodyListens,
    Order,
    OrderPlaced,
    OrderPlacedEu,
    OrderShipped,
)
from ._harness import Harness, group_stats

__all__ = ["DeliveryContract"]


class DeliveryContract:
    """Publish, fan-out, competing consumers, topic patterns, commands, unroutable messages,
    foreign and malformed messages, the size limit."""

    async def test_publish_returns_the_id_and_the_group_gets_the_event_once(
        self, harness: Harness
    ) -> None:
        # Given a group subscribed to order.placed
        bus = harness.make_bus()
        seen: list[tuple[OrderPlaced, Context]] = []

        @bus.subscribe("order.placed", group="inventory")
        async def reserve(event: OrderPlaced, ctx: Context) -> None:
            seen.append((event, ctx))

        await bus.start()
        # When an event is published, with and without a caller-supplied id
        event_id = await bus.publish(OrderPlaced(order_id="o-1"), key="u-1")
        given_id = await bus.publish(OrderPlaced(order_id="o-2"), id="evt-given-2")
        await harness.wait_until(lambda: len(seen) >= 2, what="two deliveries")
        await harness.settled(bus)
        # Then each is handled once, with its envelope and delivery context
        assert isinstance(event_id, str) and event_id
        assert given_id == "evt-given-2"
        assert len(seen) == 2, [e for e, _ in seen]
        by_order = {event.order_id: (event, ctx) for event, ctx in seen}
        event, ctx = by_order["o-1"]
        assert event == OrderPlaced(order_id="o-1")
        assert event.id == "not-the-event-id"  # a data field named id is untouched
        assert ctx.event_id == event_id and ctx.envelope.id == event_id
        assert ctx.envelope.type == "order.placed"
        assert ctx.envelope.source == bus.source
        assert ctx.envelope.dataversion == 1
        assert ctx.group == "inventory"
        assert ctx.attempt == 1
        assert ctx.key == "u-1"
        assert ctx.replayed is False
        assert by_order["o-2"][1].event_id == "evt-given-2"

    async def test_fan_out_every_matching_group_gets_the_event_once(self, harness: Harness) -> None:
        # Given four groups whose patterns match order.placed and one that does not
        bus = harness.make_bus()
        got: Counter[str] = Counter()

        def record(group: str, pattern: str) -> None:
            @bus.subscribe(pattern, group=group)
            async def handle(event: dict[str, Any]) -> None:
                got[group] += 1

        record("inventory", "order.placed")
        record("billing", "order.*")
        record("mail", "order.#")
        record("audit", "#")
        record("payments", "payment.*")
        await bus.start()
        # When one event is published
        await bus.publish(OrderPlaced(order_id="o-1"))
        await harness.wait_until(lambda: len(got) >= 4, what="four groups to get it")
        await harness.settled(bus)
        # Then each matching group got it exactly once, the other none
        assert got == Counter({"inventory": 1, "billing": 1, "mail": 1, "audit": 1})

    async def test_topic_patterns_star_is_one_word_and_hash_is_zero_or_more(
        self, harness: Harness
    ) -> None:
        bus = harness.make_bus()
        got: dict[str, list[str]] = {}

        def record(group: str, pattern: str) -> None:
            got[group] = []

            @bus.subscribe(pattern, group=group)
            async def handle(event: dict[str, Any], ctx: Context) -> None:
                got[group].append(ctx.envelope.type)

        record("star", "order.*")
        record("hash", "order.#")
        record("middle", "order.*.eu")
        record("suffix", "#.eu")
        await bus.start()
        # When events of one, two and three words are published
        for event in (
            Order(order_id="1"),
            OrderPlaced(order_id="2"),
            OrderShipped(order_id="3"),
            OrderPlacedEu(order_id="4"),
        ):
            await bus.publish(event)
        await harness.wait_until(lambda: len(got["hash"]) >= 4, what="order.# to get all four")
        await harness.settled(bus)
        # Then '*' matched exactly one word and '#' zero or more
        assert sorted(got["star"]) == ["order.placed", "order.shipped"]
        assert sorted(got["hash"]) == ["order", "order.placed", "order.placed.eu", "order.shipped"]
        assert got["middle"] == ["order.placed.eu"]
        assert got["suffix"] == ["order.placed.eu"]

    async def test_a_group_dispatches_each_type_to_the_handler_of_its_pattern(
        self, harness: Harness
    ) -> None:
        # Given one group with two handlers on disjoint patterns
        bus = harness.make_bus()
        placed: list[str] = []
        shipped: list[str] = []

        @bus.subscribe("order.placed", group="notifications")
        async def on_placed(event: OrderPlaced) -> None:
            placed.append(event.order_id)

        @bus.subscribe("order.shipped", group="notifications")
        async def on_shipped(event: OrderShipped) -> None:
            shipped.append(event.order_id)

        await bus.start()
        await bus.publish(OrderPlaced(order_id="p-1"))
        await bus.publish(OrderShipped(order_id="s-1"))
        await bus.publish(OrderPlaced(order_id="p-2"))
        await harness.wait_until(lambda: len(placed) + len(shipped) >= 3, what="three events")
        await harness.settled(bus)
        # Then each type went to its own handler, once
        assert sorted(placed) == ["p-1", "p-2"]
        assert shipped == ["s-1"]

    async def test_competing_consumers_split_a_group_and_handle_each_event_once(
        self, harness: Harness
    ) -> None:
        # Given two workers (two buses) consuming the same group
        handled: dict[str, Counter[str]] = {"w1": Counter(), "w2": Counter()}

        async def start_worker(worker: str) -> Bus:
            bus = harness.make_bus()

            @bus.subscribe("order.placed", group="inventory", concurrency=2)
            async def reserve(event: OrderPlaced, ctx: Context) -> None:
                await asyncio.sleep(0.005)  # hold the slot a moment, as real work does
                handled[worker][ctx.event_id] += 1

            await bus.start()
            return bus

        buses = [await start_worker("w1"), await start_worker("w2")]
        # When 20 events are published
        ids = [await buses[0].publish(OrderPlaced(order_id=f"o-{n}")) for n in range(20)]

        def total() -> int:
            return sum(handled["w1"].values()) + sum(handled["w2"].values())

        await harness.wait_until(lambda: total() >= 20, what="20 deliveries")
        await harness.settled(buses[0])
        # Then every event was handled exactly once, and both workers took part
        both = handled["w1"] + handled["w2"]
        assert sorted(both) == sorted(ids)
        assert set(both.values()) == {1}, both
        assert handled["w1"] and handled["w2"], {k: len(v) for k, v in handled.items()}

    async def test_a_handler_running_longer_than_the_lease_keeps_its_delivery(
        self, harness: Harness
    ) -> None:
        # Given two workers with a short lease (where the transport has leases)
        runs: list[tuple[str, int]] = []

        async def start_worker(worker: str) -> Bus:
            bus = harness.make_bus(lease=0.2)

            @bus.subscribe("order.placed", group="inventory")
            async def reserve(event: OrderPlaced, ctx: Context) -> None:
                runs.append((worker, ctx.attempt))
                await asyncio.sleep(0.7)  # the work outlasts the lease; it must be renewed

            await bus.start()
            return bus

        first = await start_worker("w1")
        await start_worker("w2")
        # When a slow event is handled
        await first.publish(OrderPlaced(order_id="o-slow"))
        await harness.wait_until(lambda: len(runs) >= 1, what="the delivery")
        await harness.settled(first)
        # Then it ran once: nobody else took it while it was being handled
        assert len(runs) == 1 and runs[0][1] == 1, runs

    async def test_send_reaches_only_the_named_group(self, harness: Harness) -> None:
        # Given a payment group and an audit group that listens to everything
        bus = harness.make_bus()
        charges: list[tuple[ChargeCard, Context]] = []
        audited: list[str] = []

        @bus.subscribe("payment.charge", group="payment")
        async def charge(command: ChargeCard, ctx: Context) -> None:
            charges.append((command, ctx))

        @bus.subscribe("#", group="audit")
        async def audit(event: dict[str, Any], ctx: Context) -> None:
            audited.append(ctx.envelope.type)

        await bus.start()
        # When a command is sent to the payment group
        command_id = await bus.send(ChargeCard(order_id="o-1"), to="payment", key="o-1")
        await harness.wait_until(lambda: len(charges) >= 1, what="the command")
        await harness.settled(bus)
        # Then only that group got it (sending does not route by pattern)
        assert [(c.order_id, x.event_id, x.key) for c, x in charges] == [("o-1", command_id, "o-1")]
        assert audited == []

    async def test_unroutable_publish_and_send_raise_unless_ignored(self, harness: Harness) -> None:
        # Given a bus whose only group listens to order.placed
        bus = harness.make_bus()

        @bus.subscribe("order.placed", group="inventory")
        async def reserve(event: OrderPlaced) -> None:
            return None

        await bus.start()
        # Then a type nobody subscribes to, and a missing group, are refused
        with pytest.raises(Unroutable):
            await bus.publish(NobodyListens(note="lost"))
        with pytest.raises(Unroutable):
            await bus.send(ChargeCard(order_id="o-1"), to="no-such-group")
        # And a bus with on_unroutable="ignore" accepts both
        lenient = harness.make_bus(on_unroutable="ignore")
        await lenient.start()
        assert await lenient.publish(NobodyListens(note="dropped"), id="n-1") == "n-1"
        assert await lenient.send(ChargeCard(order_id="o-1"), to="no-such-group", id="c-1") == (
            "c-1"
        )
        # And nothing reached the existing group
        stats = await group_stats(bus, "inventory")
        assert (stats.ready, stats.in_flight, stats.scheduled) == (0, 0, 0)

    async def test_foreign_plain_json_is_handled_with_type_from_key_and_id_from_message_id(
        self, harness: Harness
    ) -> None:
        # Given a group that retries once, so redeliveries can be compared
        bus = harness.make_bus()
        runs: list[tuple[str, str, str, int]] = []

        @bus.subscribe("order.placed", group="inventory", retry=Retry(attempts=2, base=0.01))
        async def reserve(event: OrderPlaced, ctx: Context) -> None:
            runs.append((event.order_id, ctx.event_id, ctx.envelope.type, ctx.attempt))
            if ctx.attempt == 1:
                raise ConnectionError("first attempt fails")

        await bus.start()

        def plain(order_id: str, message_id: str) -> OutgoingMessage:
            body = json.dumps({"order_id": order_id}).encode()
            return OutgoingMessage(
                id=message_id, type="order.placed", body=body, content_type="application/json"
            )

        # When another producer publishes plain JSON (no CloudEvents attributes): one with a
        # message id, two identical ones without, and a different one without
        routed = await bus.transport.publish(
            [plain("ext-a", "m-1"), plain("ext-b", ""), plain("ext-b", ""), plain("ext-c", "")]
        )
        assert routed == [True, True, True, True]
        await harness.wait_until(lambda: len(runs) >= 8, what="4 messages x 2 attempts")
        await harness.settled(bus)
        # Then each was decoded, typed by its routing key, and identified stably
        assert len(runs) == 8, runs
        assert {r[2] for r in runs} == {"order.placed"}
        ids: dict[str, set[str]] = {}
        for order_id, event_id, _, _ in runs:
            ids.setdefault(order_id, set()).add(event_id)
        assert ids["ext-a"] == {"m-1"}
        assert len(ids["ext-b"]) == 1 and len(ids["ext-c"]) == 1, ids
        (b_id,), (c_id,) = ids["ext-b"], ids["ext-c"]
        assert b_id and c_id and b_id != c_id and "m-1" not in (b_id, c_id)

    async def test_bad_input_is_dead_lettered_with_a_reason_and_the_worker_goes_on(
        self, harness: Harness
    ) -> None:
        # Given a group handling order.placed
        bus = harness.make_bus()
        good: list[str] = []

        @bus.subscribe("order.placed", group="inventory")
        async def reserve(event: OrderPlaced) -> None:
            good.append(event.order_id)

        await bus.start()
        wrong_shape = json.dumps(
            {
                "specversion": "1.0",
                "id": "bad-shape",
                "source": "contract",
                "type": "order.placed",
                "datacontenttype": "application/json",
                "data": {"unexpected": True},
            }
        ).encode()
        # When a non-JSON body, a body of the wrong shape, and an unknown type sent straight
        # to the group arrive, followed by a good event
        await bus.transport.publish(
            [
                OutgoingMessage(
                    id="bad-json",
                    type="order.placed",
                    body=b"\xff{not json",
                    content_type="application/json",
                ),
                OutgoingMessage(id="bad-shape", type="order.placed", body=wrong_shape),
                OutgoingMessage(
                    id="bad-type",
                    type="order.cancelled",
                    body=b'{"order_id": "o-0"}',
                    content_type="application/json",
                    group="inventory",
                ),
            ]
        )
        await bus.publish(OrderPlaced(order_id="o-good"))
        dlq = bus.dead_letters("inventory")

        async def three_dead() -> bool:
            return len(await dlq.list()) >= 3

        await harness.wait_until(three_dead, what="three dead letters")
        await harness.wait_until(lambda: good == ["o-good"], what="the good event")
        await harness.settled(bus)
        # Then each bad one is in the DLQ with a clear one-line reason, after one attempt
        entries = {e.event_id or "": e for e in await dlq.list()}
        assert sorted(entries) == ["bad-json", "bad-shape", "bad-type"], sorted(entries)
        for entry in entries.values():
            assert entry.group == "inventory"
            assert entry.attempts == 1
            assert entry.reason and "\n" not in entry.reason
        assert "json" in entries["bad-json"].reason.lower()
        assert entries["bad-json"].envelope is None
        assert "order_id" in entries["bad-shape"].reason
        assert entries["bad-shape"].data == {"unexpected": True}
        assert "order.cancelled" in entries["bad-type"].reason
        assert entries["bad-type"].type == "order.cancelled"
        assert good == ["o-good"]

    async def test_publishing_over_max_message_size_raises_and_publishes_nothing(
        self, harness: Harness
    ) -> None:
        # Given a publish-only bus with a small size limit and a declared group
        bus = harness.make_bus(max_message_size=2048, consume=False)

        @bus.subscribe("order.big", group="archive")
        async def archive(event: BigEvent) -> None:
            return None

        await bus.start()
        # When an event over the limit is published, alone or in a batch
        with pytest.raises(MessageTooLarge):
            await bus.publish(BigEvent(blob="x" * 4096))
        with pytest.raises(MessageTooLarge):
            await bus.publish_many([BigEvent(blob="small"), BigEvent(blob="x" * 4096)])
        # Then nothing was published; a small event still is
        stats = await group_stats(bus, "archive")
        assert (stats.ready, stats.scheduled) == (0, 0)
        await bus.publish(BigEvent(blob="small"))
        stats = await group_stats(bus, "archive")
        assert stats.ready == 1
