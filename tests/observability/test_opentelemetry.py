"""`OpenTelemetry()`: spans of publishing and processing, and one trace across services,
recorded with the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy.ext.asyncio import AsyncSession

from tidings import Bus, Command, Context, Event, Permanent, Retry
from tidings.observability import OpenTelemetry, messaging_system
from tidings.testing import TestBus


class OrderPlaced(Event, type="order.placed", version=1):
    order_id: str


class InvoiceIssued(Event, type="invoice.issued", version=1):
    order_id: str


class ChargeCard(Command, type="payment.charge", version=1):
    order_id: str


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


def shop(provider: TracerProvider, *, fail_billing_once: bool = True) -> Bus:
    """Billing fails its first attempt, then issues an invoice; mail handles invoices."""
    bus = Bus("memory://", middleware=[OpenTelemetry("memory://", tracer_provider=provider)])

    @bus.subscribe("order.placed", group="billing", retry=Retry(attempts=3, base=1.0))
    async def bill(event: OrderPlaced, ctx: Context) -> None:
        if fail_billing_once and ctx.attempt == 1:
            raise ConnectionError("card processor timed out")
        await ctx.publish(InvoiceIssued(order_id=event.order_id))

    @bus.subscribe("invoice.issued", group="mail")
    async def mail(event: InvoiceIssued) -> None:
        pass

    @bus.subscribe("payment.charge", group="payment")
    async def charge(command: ChargeCard) -> None:
        raise Permanent("card declined")

    return bus


def spans_named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def one(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    [span] = spans_named(exporter, name)
    return span


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_one_trace_from_the_request_through_a_retry_to_the_next_group(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    # Given a bus traced by OpenTelemetry() whose billing handler fails once
    bus = shop(provider)
    tracer = provider.get_tracer("the web app")

    # When an HTTP-like request publishes an order and everything is processed
    async with TestBus(bus) as tb:
        with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER):
            await bus.publish(OrderPlaced(order_id="o-1"))
        await tb.drain(retries=True)

    # Then the request, the publish, both billing attempts, the context publish and mail's
    # processing are one trace, each span the child of the one that caused it
    request = one(exporter, "POST /orders")
    send_order = one(exporter, "send order.placed")
    first, second = sorted(spans_named(exporter, "process billing"), key=lambda s: s.start_time)
    send_invoice = one(exporter, "send invoice.issued")
    mail = one(exporter, "process mail")
    chain = [request, send_order, first, second, send_invoice, mail]
    assert {s.context.trace_id for s in chain} == {request.context.trace_id}
    assert parent_of(send_order) == request.context.span_id
    assert parent_of(first) == send_order.context.span_id
    assert parent_of(second) == send_order.context.span_id  # a retry: the same parent
    assert parent_of(send_invoice) == second.context.span_id  # ctx.publish continues it
    assert parent_of(mail) == send_invoice.context.span_id

    # with the span kinds of the messaging conventions
    assert [s.kind for s in chain] == [
        SpanKind.SERVER, SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.CONSUMER,
        SpanKind.PRODUCER, SpanKind.CONSUMER,
    ]  # fmt: skip

    # and the failed attempt is an error with its exception, the second one is not
    assert first.status.status_code is StatusCode.ERROR
    assert "ConnectionError: card processor timed out" in (first.status.description or "")
    [exception] = [e for e in first.events if e.name == "exception"]
    assert exception.attributes is not None
    assert exception.attributes["exception.type"] == "ConnectionError"
    assert second.status.status_code is StatusCode.UNSET
    assert first.attributes is not None and second.attributes is not None
    assert (first.attributes["tidings.delivery.attempt"], second.attributes["tidings.outcome"]) == (
        1,
        "ack",
    )


async def test_span_attributes_follow_the_messaging_conventions(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    # Given a traced bus
    bus = shop(provider, fail_billing_once=False)

    # When an event is published and processed, and a command is sent to a group
    async with TestBus(bus) as tb:
        event_id = await bus.publish(OrderPlaced(order_id="o-2"))
        command_id = await bus.send(ChargeCard(order_id="o-2"), to="payment")
        await tb.drain()

    # Then the producer span of the event names its type, the command's its group
    send = one(exporter, "send order.placed")
    assert send.attributes == {
        "messaging.system": "tidings",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": "order.placed",
        "messaging.message.id": event_id,
        "tidings.event.type": "order.placed",
    }
    send_command = one(exporter, "send payment")
    assert send_command.attributes is not None
    assert send_command.attributes["messaging.destination.name"] == "payment"
    assert send_command.attributes["messaging.message.id"] == command_id

    # and the consumer span names the group
    process = one(exporter, "process billing")
    assert process.attributes is not None
    assert {k: process.attributes[k] for k in process.attributes if k.startswith("messaging.")} == {
        "messaging.system": "tidings",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "billing",
        "messaging.consumer.group.name": "billing",
        "messaging.message.id": event_id,
    }

    # and a dead letter ends its span as an error
    payment = one(exporter, "process payment")
    assert payment.status.status_code is StatusCode.ERROR
    assert payment.attributes is not None
    assert payment.attributes["tidings.outcome"] == "dead_letter"
    assert payment.attributes["error.type"] == "Permanent"


async def test_the_trace_survives_the_dead_letter_queue(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    # Given a command that was dead-lettered
    bus = shop(provider)
    async with TestBus(bus) as tb:
        await bus.send(ChargeCard(order_id="o-3"), to="payment")
        await tb.drain()
        send = one(exporter, "send payment")

        # When it is replayed from the dead-letter queue
        assert await bus.dead_letters("payment").replay(all=True) == 1
        await tb.drain()

    # Then the replayed delivery is processed in the trace of the original publish
    first, again = sorted(spans_named(exporter, "process payment"), key=lambda s: s.start_time)
    assert parent_of(first) == parent_of(again) == send.context.span_id
    assert again.context.trace_id == send.context.trace_id


async def test_a_replay_from_the_log_links_to_the_original_trace(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    # Given an event published and processed in a request's trace
    bus = shop(provider, fail_billing_once=False)
    tracer = provider.get_tracer("the web app")
    async with TestBus(bus) as tb:
        with tracer.start_as_current_span("POST /orders"):
            await bus.publish(OrderPlaced(order_id="o-4"))
        await tb.drain()
        send = one(exporter, "send order.placed")

        # When billing replays it from the retained log
        assert await bus.replay("billing", since="1h") == 1
        await tb.drain()

    # Then the replay is a trace of its own, linked to the context the event carried
    original, replayed = sorted(
        spans_named(exporter, "process billing"), key=lambda s: s.start_time
    )
    assert parent_of(original) == send.context.span_id
    assert replayed.parent is None
    assert replayed.context.trace_id != send.context.trace_id
    [link] = replayed.links
    assert (link.context.trace_id, link.context.span_id) == (
        send.context.trace_id,
        send.context.span_id,
    )
    assert replayed.attributes is not None
    assert replayed.attributes["tidings.delivery.replayed"] is True


async def test_without_an_sdk_nothing_is_added_to_the_envelope() -> None:
    # Given a bus traced with the API alone (no SDK configured: no-op spans)
    from opentelemetry.trace import NoOpTracerProvider

    bus = Bus("memory://", middleware=[OpenTelemetry(tracer_provider=NoOpTracerProvider())])

    @bus.subscribe("order.placed", group="billing")
    async def bill(event: OrderPlaced) -> None:
        pass

    # When an event is published
    async with TestBus(bus) as tb:
        await bus.publish(OrderPlaced(order_id="o-5"))
        await tb.drain()

    # Then it carries no trace context
    [published] = tb.published
    assert published.envelope is not None
    assert published.envelope.traceparent is None


def test_messaging_system_of_each_transport() -> None:
    assert messaging_system("amqp://guest:guest@localhost/") == "rabbitmq"
    assert messaging_system("AMQPS://host/vhost") == "rabbitmq"
    assert messaging_system("kafka://localhost:9092") == "kafka"
    assert messaging_system("sqlite:///tidings.db") == "tidings"
    assert messaging_system("memory://") == "tidings"
    assert OpenTelemetry(system="rabbitmq").system == "rabbitmq"


async def test_a_message_staged_in_the_outbox_stays_in_the_request_s_trace(
    provider: TracerProvider, exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    # Given a bus with an outbox and a request span that stages an order in a transaction
    bus = Bus(
        "memory://",
        database=f"sqlite+aiosqlite:///{tmp_path / 'app.db'}",
        middleware=[OpenTelemetry("memory://", tracer_provider=provider)],
    )

    @bus.subscribe("order.placed", group="billing")
    async def bill(event: OrderPlaced) -> None:
        pass

    tracer = provider.get_tracer("web")
    async with TestBus(bus) as tb:
        with tracer.start_as_current_span("POST /orders") as request:
            async with AsyncSession(bus.database) as session, session.begin():
                await bus.publish(OrderPlaced(order_id="o-1"), session=session)
        # When the relay sends it, outside the request
        await tb.drain()

    # Then the send span is the request's child, and the process span the send's
    send = one(exporter, "send order.placed")
    process = one(exporter, "process billing")
    trace_id = request.get_span_context().trace_id
    assert send.context.trace_id == trace_id == process.context.trace_id
    assert parent_of(send) == request.get_span_context().span_id
    assert parent_of(process) == send.context.span_id


def test_messaging_system_comes_from_the_bus_it_is_given_to() -> None:
    # Given middleware made without a URL
    on_rabbit, on_sqlite, told = OpenTelemetry(), OpenTelemetry(), OpenTelemetry(system="kafka")

    # When buses are made with them (nothing is opened)
    Bus("amqp://guest:guest@localhost/", middleware=[on_rabbit, told])
    Bus("sqlite:///unused.db", middleware=[on_sqlite])

    # Then each tells the system from its bus's URL, unless it was given one
    assert on_rabbit.system == "rabbitmq"
    assert on_sqlite.system == "tidings"
    assert told.system == "kafka"
