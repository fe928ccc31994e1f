"""The middleware stack: outcomes are values a middleware sees and replaces, call_next never
raises, publish hooks wrap the real publish and confirm. Run on `TestBus` (the real pipeline
on the memory transport, with a clock that only moves when told)."""

from __future__ import annotations

import dataclasses

import pytest

from tidings import (
    Bus,
    ConfigError,
    Context,
    Event,
    MessageTooLarge,
    Middleware,
    Outcome,
    Permanent,
    Publication,
    Retry,
    Unroutable,
)
from tidings.testing import TestBus
from tidings.transports import OutgoingMessage


class OrderPlaced(Event, type="order.placed"):
    order_id: str


class StockReserved(Event, type="stock.reserved"):
    order_id: str


class Blob(Event, type="blob.stored"):
    blob: str


class Recorder(Middleware):
    """Records the outcome of every delivery; optionally replaces some."""

    def __init__(self, replace: dict[str, Outcome] | None = None) -> None:
        self.seen: list[Outcome] = []
        self.replace = replace or {}

    async def consume(self, ctx: Context, call_next):  # type: ignore[no-untyped-def]
        outcome = await call_next()
        self.seen.append(outcome)
        return self.replace.get(outcome.kind)


def flaky_bus(middleware: list[object], *, attempts: int = 2) -> tuple[Bus, list[int]]:
    bus = Bus("memory://unused", middleware=middleware)
    runs: list[int] = []

    @bus.subscribe("order.placed", group="inventory", retry=Retry(attempts=attempts, base=1.0))
    async def reserve(event: OrderPlaced, ctx: Context) -> None:
        runs.append(ctx.attempt)
        raise RuntimeError("warehouse busy")

    return bus, runs


def test_outcomes_are_values_with_kind_error_delay_and_reason() -> None:
    error = ValueError("bad card")
    assert Outcome.ack().kind == "ack" and Outcome.ack().succeeded
    assert Outcome.duplicate().kind == "duplicate" and Outcome.duplicate().succeeded
    retry = Outcome.retry(2.5, error)
    assert (retry.kind, retry.delay, retry.error, retry.reason) == (
        "retry",
        2.5,
        error,
        "ValueError: bad card",
    )
    dead = Outcome.dead_letter("no such card", error)
    assert (dead.kind, dead.reason, dead.error, dead.succeeded) == (
        "dead_letter",
        "no such card",
        error,
        False,
    )
    with pytest.raises(ConfigError, match="must not be negative"):
        Outcome.retry(-1.0)
    with pytest.raises(ConfigError, match="finite"):
        Outcome.retry(float("nan"))
    with pytest.raises(ConfigError, match="reason"):
        Outcome.dead_letter("  ")


async def test_a_middleware_sees_retry_then_dead_letter_with_the_error() -> None:
    recorder = Recorder()
    bus, runs = flaky_bus([recorder], attempts=2)
    async with TestBus(bus) as tb:
        await bus.publish(OrderPlaced(order_id="o-1"))
        await tb.drain(retries=True)
    assert runs == [1, 2]
    assert [o.kind for o in recorder.seen] == ["retry", "dead_letter"]
    first, last = recorder.seen
    assert isinstance(first.error, RuntimeError) and first.delay is not None
    assert 0.0 <= first.delay <= 1.0
    assert last.reason == "failed 2 of 2 attempts: RuntimeError: warehouse busy"
    assert [d.reason for d in tb.dead_lettered] == [last.reason]


async def test_a_middleware_replaces_a_dead_letter_with_an_ack() -> None:
    recorder = Recorder(replace={"dead_letter": Outcome.ack()})
    bus, runs = flaky_bus([recorder], attempts=1)
    async with TestBus(bus) as tb:
        await bus.publish(OrderPlaced(order_id="o-1"))
        await tb.drain(retries=True)
        stats = {s.group: s for s in await bus.stats()}
    assert runs == [1]
    assert [o.kind for o in recorder.seen] == ["dead_letter"]
    assert tb.dead_lettered == []
    assert (stats["inventory"].dead, stats["inventory"].ready) == (0, 0)


async def test_a_middleware_turns_a_retry_into_a_dead_letter_at_once() -> None:
    recorder = Recorder(replace={"retry": Outcome.dead_letter("gave up early")})
    bus, runs = flaky_bus([recorder], attempts=5)
    async with TestBus(bus) as tb:
        await bus.publish(OrderPlaced(order_id="o-1"))
        await tb.drain(retries=True)
    assert runs == [1]
    assert [(d.reason, d.exception_type) for d in tb.dead_lettered] == [("gave up early", None)]


async def test_call_next_never_raises_and_the_outer_middleware_sees_the_inner_replacement() -> None:
    outer = Recorder()
    inner = Recorder(replace={"dead_letter": Outcome.ack()})
    bus, _ = flaky_bus([outer, inner], attempts=1)
    async with TestBus(bus) as tb:
        await bus.publish(OrderPlaced(order_id="o-1"))
        await tb.drain(retries=True)
    assert [o.kind for o in inner.seen] == ["dead_letter"]
    assert [o.kind for o in outer.seen] == ["ack"]


async def test_a_middleware_raising_before_call_next_counts_as_a_failed_attempt() -> None:
    class Gate(Middleware):
        async def consume(self, ctx, call_next):  # type: ignore[no-untyped-def]
            if ctx.attempt == 1:
                raise ConnectionError("audit log unreachable")
            return await call_next()

    bus = Bus("memory://unused", middleware=[Gate()])
    handled: list[int] = []

    @bus.subscribe("order.placed", group="inventory", retry=Retry(attempts=3, base=1.0))
    async def reserve(event: OrderPlaced, ctx: Context) -> None:
        handled.append(ctx.attempt)

    async with TestBus(bus) as tb:
        await bus.publish(OrderPlaced(order_id="o-1"))
        await tb.drain(retries=True)
    assert handled == [2]
    assert tb.dead_lettered == []


async def test_a_result_that_is_not_an_outcome_leaves_the_inner_one() -> None:
    class Confused(Middleware):
        async def consume(self, ctx, call_next):  # type: ignore[no-untyped-def]
            await call_next()
            return "ack"

    bus, runs = flaky_bus([Confused()], attempts=1)
    async with TestBus(bus) as tb:
        await bus.publish(OrderPlaced(order_id="o-1"))
        await tb.drain(retries=True)
    assert runs == [1]
    assert len(tb.dead_lettered) == 1


async def test_a_middleware_that_handles_the_delivery_itself_acks_it() -> None:
    class Swallow(Middleware):
        async def consume(self, ctx, call_next):  # type: ignore[no-untyped-def]
            return None  # never calls call_next: 0.1 middleware did this to skip a handler

    bus, runs = flaky_bus([Swallow()], attempts=1)
    async with TestBus(bus) as tb:
        await bus.publish(OrderPlaced(order_id="o-1"))
        await tb.drain(retries=True)
        stats = {s.group: s for s in await bus.stats()}
    assert runs == []
    assert tb.dead_lettered == []
    assert stats["inventory"].ready == 0


async def test_an_undecodable_message_reaches_middleware_as_a_dead_letter() -> None:
    recorder = Recorder()
    bus = Bus("memory://unused", middleware=[recorder])

    @bus.subscribe("order.placed", group="inventory")
    async def reserve(event: OrderPlaced) -> None:
        raise AssertionError("never called")

    async with TestBus(bus) as tb:
        garbage = OutgoingMessage(id="m-1", type="order.placed", body=b"{not json")
        await tb.transport.publish([garbage])
        await tb.drain()
    assert [o.kind for o in recorder.seen] == ["dead_letter"]
    assert recorder.seen[0].reason is not None
    assert recorder.seen[0].reason.startswith("undecodable message: body is not JSON")
    assert [d.event_id for d in tb.dead_lettered] == ["m-1"]


async def test_messages_the_context_held_are_sent_inside_the_stack() -> None:
    class SeesSent(Middleware):
        def __init__(self, tb: list[TestBus]) -> None:
            self.tb = tb
            self.sent_before_return: list[list[str | None]] = []

        async def consume(self, ctx, call_next):  # type: ignore[no-untyped-def]
            outcome = await call_next()
            self.sent_before_return.append(self.tb[0].published_types())
            return outcome

    holder: list[TestBus] = []
    spy = SeesSent(holder)
    bus = Bus("memory://unused", middleware=[spy])

    @bus.subscribe("order.placed", group="inventory")
    async def reserve(event: OrderPlaced, ctx: Context) -> None:
        await ctx.publish(StockReserved(order_id=event.order_id))

    @bus.subscribe("stock.reserved", group="shipping")
    async def ship(event: StockReserved) -> None:
        return None

    async with TestBus(bus) as tb:
        holder.append(tb)
        await bus.publish(OrderPlaced(order_id="o-1"))
        await tb.drain()
    assert spy.sent_before_return[0] == ["order.placed", "stock.reserved"]


async def test_a_failing_send_of_held_messages_is_a_failed_attempt() -> None:
    recorder = Recorder()
    bus = Bus("memory://unused", middleware=[recorder])

    @bus.subscribe("order.placed", group="inventory", retry=Retry(attempts=1))
    async def reserve(event: OrderPlaced, ctx: Context) -> None:
        await ctx.send(StockReserved(order_id=event.order_id), to="no-such-group")

    async with TestBus(bus) as tb:
        await bus.publish(OrderPlaced(order_id="o-1"))
        await tb.drain()
    assert [o.kind for o in recorder.seen] == ["dead_letter"]
    assert isinstance(recorder.seen[0].error, Unroutable)


class Stamp(Middleware):
    """Adds a subject to every envelope and records the ids confirmed or the error."""

    def __init__(self) -> None:
        self.confirmed: list[str] = []
        self.errors: list[BaseException] = []

    async def publish(self, message: Publication, call_next):  # type: ignore[no-untyped-def]
        envelope = dataclasses.replace(message.envelope, subject=f"stamped-{message.type}")
        try:
            event_id = await call_next(message.replace(envelope=envelope))
        except Exception as exc:
            self.errors.append(exc)
            raise
        self.confirmed.append(event_id)
        return event_id


async def test_publish_call_next_publishes_confirms_and_returns_the_id() -> None:
    stamp = Stamp()
    bus = Bus("memory://unused", middleware=[stamp])
    got: list[str | None] = []

    @bus.subscribe("order.placed", group="inventory")
    async def reserve(event: OrderPlaced, ctx: Context) -> None:
        got.append(ctx.envelope.subject)

    async with TestBus(bus) as tb:
        event_id = await bus.publish(OrderPlaced(order_id="o-1"))
        await tb.drain()
        # The hook sees the exception of the real publish
        with pytest.raises(Unroutable):
            await bus.publish(StockReserved(order_id="o-1"))
    assert stamp.confirmed == [event_id]
    assert got == ["stamped-order.placed"]
    assert [type(e) for e in stamp.errors] == [Unroutable]


async def test_a_publish_hook_that_does_not_call_next_drops_the_message() -> None:
    class Drop(Middleware):
        async def publish(self, message, call_next):  # type: ignore[no-untyped-def]
            return message.id

    bus = Bus("memory://unused", middleware=[Drop()])

    @bus.subscribe("order.placed", group="inventory")
    async def reserve(event: OrderPlaced) -> None:
        return None

    async with TestBus(bus) as tb:
        event_id = await bus.publish(OrderPlaced(order_id="o-1"))
        assert isinstance(event_id, str)
        assert tb.published == []


async def test_publish_many_through_hooks_is_one_transport_publish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stamp = Stamp()
    bus = Bus("memory://unused", middleware=[stamp], max_message_size=2048)

    @bus.subscribe("blob.stored", group="archive")
    async def store(event: Blob) -> None:
        return None

    async with TestBus(bus) as tb:
        calls: list[int] = []
        publish = tb.transport.publish

        async def counting(messages):  # type: ignore[no-untyped-def]
            calls.append(len(messages))
            return await publish(messages)

        monkeypatch.setattr(tb.transport, "publish", counting)
        ids = await bus.publish_many([Blob(blob="a"), Blob(blob="b"), Blob(blob="c")])
        assert calls == [3]
        assert stamp.confirmed == ids
        # A message over the size limit refuses the whole batch: nothing is published
        with pytest.raises(MessageTooLarge):
            await bus.publish_many([Blob(blob="small"), Blob(blob="x" * 4096)])
        assert calls == [3]
        assert len(tb.published) == 3


def test_an_object_without_hooks_is_refused() -> None:
    with pytest.raises(ConfigError, match="neither a consume nor a publish"):
        Bus("memory://unused", middleware=[object()])


async def test_a_duplicate_reaches_middleware_as_its_own_outcome() -> None:
    recorder = Recorder()
    bus = Bus("memory://unused", middleware=[recorder])
    runs: list[str] = []

    @bus.subscribe("order.placed", group="inventory", idempotent=True)
    async def reserve(event: OrderPlaced) -> None:
        runs.append(event.order_id)

    async with TestBus(bus) as tb:
        await bus.publish(OrderPlaced(order_id="o-1"), id="evt-1")
        await tb.drain()
        await bus.publish(OrderPlaced(order_id="o-1"), id="evt-1")
        await tb.drain()
    assert runs == ["o-1"]
    assert [o.kind for o in recorder.seen] == ["ack", "duplicate"]


async def test_permanent_failures_keep_their_reason() -> None:
    recorder = Recorder()
    bus = Bus("memory://unused", middleware=[recorder])

    @bus.subscribe("order.placed", group="inventory")
    async def reserve(event: OrderPlaced) -> None:
        raise Permanent("no such warehouse")

    async with TestBus(bus) as tb:
        await bus.publish(OrderPlaced(order_id="o-1"))
        await tb.drain()
    assert [o.reason for o in recorder.seen] == ["permanent failure: Permanent: no such warehouse"]


async def test_a_publish_hook_that_publishes_inside_a_batch_publishes_everything_once() -> None:
    class Audit(Middleware):
        def __init__(self, bus: list[Bus]) -> None:
            self.bus = bus

        async def publish(self, message, call_next):  # type: ignore[no-untyped-def]
            if message.type == "blob.stored":
                await self.bus[0].publish(OrderPlaced(order_id=f"audit-{message.message.blob}"))
            return await call_next(message)

    holder: list[Bus] = []
    bus = Bus("memory://unused", middleware=[Audit(holder)])
    holder.append(bus)
    stored: list[str] = []
    audited: list[str] = []

    @bus.subscribe("blob.stored", group="archive")
    async def store(event: Blob) -> None:
        stored.append(event.blob)

    @bus.subscribe("order.placed", group="audit")
    async def audit(event: OrderPlaced) -> None:
        audited.append(event.order_id)

    async with TestBus(bus) as tb:
        ids = await bus.publish_many([Blob(blob="a"), Blob(blob="b")])
        await tb.drain()
    assert len(set(ids)) == 2
    assert sorted(stored) == ["a", "b"]
    assert sorted(audited) == ["audit-a", "audit-b"]
