"""Contract: the middleware stack — order, outcomes a middleware sees and replaces, publish
hooks around the real publish, and 0.1-style hooks that return None."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from .. import Context, Middleware, Outcome, Permanent, Retry
from .._core.middleware import ConsumeNext, Publication, PublishNext
from ._events import OrderPlaced
from ._harness import Harness, group_stats

__all__ = ["MiddlewareContract"]

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

Log = list[str]


class _Tag:
    """A 0.1-style middleware (not a subclass; consume returns None), logging each hook."""

    def __init__(self, name: str, log: Log) -> None:
        self.name = name
        self.log = log

    async def consume(self, ctx: Context, call_next: Callable[[], Awaitable[Outcome]]) -> None:
        self.log.append(f"{self.name}>")
        await call_next()
        self.log.append(f"<{self.name}")

    async def publish(self, message: Publication, call_next: PublishNext) -> str:
        self.log.append(f"publish {self.name}")
        return await call_next(message)


class _Traceparent(Middleware):
    """A publish middleware that replaces the envelope and sees the confirmed id."""

    def __init__(self) -> None:
        self.confirmed: list[str] = []

    async def publish(self, message: Publication, call_next: PublishNext) -> str:
        envelope = dataclasses.replace(message.envelope, traceparent=TRACEPARENT)
        event_id = await call_next(message.replace(envelope=envelope))
        self.confirmed.append(event_id)
        return event_id


class _Outcomes(Middleware):
    """Records every outcome; acknowledges dead letters of order ``o-forgiven``."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def consume(self, ctx: Context, call_next: ConsumeNext) -> Outcome | None:
        outcome = await call_next()
        self.seen.append((ctx.envelope.subject or ctx.event_id, outcome.kind))
        if outcome.kind == "dead_letter" and ctx.key == "o-forgiven":
            return Outcome.ack()
        return None


class MiddlewareContract:
    """Consume and publish hooks run in order around the real work; the outcome of a
    delivery is a value a middleware sees and can replace before it is settled."""

    async def test_hooks_run_in_order_and_a_replaced_envelope_reaches_the_consumer(
        self, harness: Harness
    ) -> None:
        log: Log = []
        worker = harness.make_bus(middleware=[_Tag("a", log), _Tag("b", log)])
        seen: list[Context] = []

        @worker.subscribe("order.placed", group="inventory")
        async def reserve(event: OrderPlaced, ctx: Context) -> None:
            log.append("handler")
            seen.append(ctx)

        await worker.start()
        traceparent = _Traceparent()
        publisher = harness.make_bus(
            consume=False, middleware=[_Tag("p1", log), _Tag("p2", log), traceparent]
        )
        await publisher.start()
        event_id = await publisher.publish(OrderPlaced(order_id="o-1"))
        await harness.wait_until(lambda: len(seen) >= 1, what="the delivery")
        await harness.settled(worker)
        assert log == ["publish p1", "publish p2", "a>", "b>", "handler", "<b", "<a"]
        assert seen[0].envelope.traceparent == TRACEPARENT
        assert traceparent.confirmed == [event_id]

    async def test_a_middleware_replaces_a_dead_letter_with_an_ack(self, harness: Harness) -> None:
        # Given a handler that fails permanently, under a middleware that forgives one key
        outcomes = _Outcomes()
        worker = harness.make_bus(middleware=[outcomes])
        ran: list[str] = []

        @worker.subscribe("order.placed", group="inventory", retry=Retry(attempts=1))
        async def reserve(event: OrderPlaced) -> None:
            ran.append(event.order_id)
            raise Permanent(f"cannot reserve {event.order_id}")

        await worker.start()
        # When one forgiven and one ordinary event fail
        await worker.publish(OrderPlaced(order_id="o-forgiven"), key="o-forgiven")
        await worker.publish(OrderPlaced(order_id="o-2"), key="o-2")
        await harness.wait_until(lambda: len(outcomes.seen) >= 2, what="both outcomes")
        await harness.settled(worker)
        # Then the middleware saw both dead-letter outcomes, and only the other one is dead
        assert sorted(ran) == ["o-2", "o-forgiven"]
        assert [kind for _, kind in outcomes.seen] == ["dead_letter", "dead_letter"]
        dead = await worker.dead_letters("inventory").list()
        assert [entry.data["order_id"] for entry in dead] == ["o-2"]
        assert (await group_stats(worker, "inventory")).dead == 1

    async def test_a_raising_middleware_leaves_the_inner_outcome_standing(
        self, harness: Harness
    ) -> None:
        class Broken(Middleware):
            async def consume(self, ctx: Context, call_next: ConsumeNext) -> Outcome | None:
                await call_next()
                raise RuntimeError("middleware bug")

        worker = harness.make_bus(middleware=[Broken()])
        handled: list[str] = []

        @worker.subscribe("order.placed", group="inventory")
        async def reserve(event: OrderPlaced) -> None:
            handled.append(event.order_id)

        await worker.start()
        await worker.publish(OrderPlaced(order_id="o-1"))
        await harness.wait_until(lambda: handled == ["o-1"], what="the handler")
        await harness.settled(worker)
        # The handler's ack stood: handled once, nothing dead or waiting for a retry
        stats = await group_stats(worker, "inventory")
        assert (handled, stats.dead, stats.scheduled) == (["o-1"], 0, 0)
