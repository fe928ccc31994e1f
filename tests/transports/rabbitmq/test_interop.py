"""Interop with plain AMQP clients: a pika consumer parses our messages with the official
CloudEvents SDK binding, and a pika producer's plain JSON reaches a tidings subscriber."""

import asyncio
import json

import pika
import pytest
from cloudevents.core.bindings.rabbitmq import RabbitMQMessage, from_rabbitmq_event

from tests.support import eventually
from tidings import Context, Event

pytestmark = pytest.mark.rabbitmq


class UserCreated(Event, type="user.created", version=1):
    email: str


def _pika_get(url: str, queue: str):
    """Take one message from `queue` with a plain pika client (in a thread)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        return method, properties, body
    finally:
        connection.close()


def _pika_publish(url: str, exchange: str, routing_key: str, body: bytes, message_id: str):
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            exchange,
            routing_key,
            body,
            pika.BasicProperties(
                content_type="application/json", message_id=message_id, delivery_mode=2
            ),
            mandatory=True,
        )
    finally:
        connection.close()


@pytest.mark.parametrize("wire", ["structured", "binary"])
async def test_a_plain_pika_consumer_parses_our_message_with_the_cloudevents_sdk(namespace, wire):
    # Given a bus declaring group "mailer" (publish-only: nothing of ours consumes it)
    bus = namespace.bus(wire=wire, consume=False, source="tidings://test/interop")

    @bus.subscribe("user.#", group="mailer")
    async def mail(event: UserCreated) -> None:
        raise AssertionError("a publish-only bus consumes nothing")

    async with bus:
        await bus.declare()
        # When an event is published
        event_id = await bus.publish(UserCreated(email="ada@example.com"), key="u-1")
        # Then a plain pika client reads it from the group queue
        method, props, body = await asyncio.to_thread(
            _pika_get, namespace.node.url, namespace.queue("mailer")
        )
    assert method is not None, "the group queue is empty"
    headers = {k: v if isinstance(v, str) else str(v) for k, v in (props.headers or {}).items()}
    event = from_rabbitmq_event(
        RabbitMQMessage(headers=headers, content_type=props.content_type, body=body)
    )
    assert event.get_id() == event_id
    assert event.get_type() == "user.created"
    assert event.get_source() == "tidings://test/interop"
    data = event.get_data()
    if isinstance(data, bytes | str):
        data = json.loads(data)
    assert data == {"email": "ada@example.com"}
    # And the AMQP properties mirror the envelope
    assert props.message_id == event_id
    assert props.type == "user.created"
    assert props.app_id == namespace.name
    assert props.delivery_mode == 2
    assert isinstance(props.timestamp, int) and props.timestamp > 1_600_000_000
    if wire == "structured":
        assert props.content_type == "application/cloudevents+json"
        assert not any(k.startswith("ce-") for k in headers)
    else:
        assert props.content_type.startswith("application/json")
        assert headers["ce-id"] == event_id and headers["ce-specversion"] == "1.0"


async def test_plain_json_from_a_pika_producer_reaches_a_tidings_subscriber(namespace):
    # Given a worker subscribed to user.created
    bus = namespace.bus()
    got: list[tuple[str, str, str]] = []

    @bus.subscribe("user.created", group="mailer")
    async def mail(event: UserCreated, ctx: Context) -> None:
        got.append((event.email, ctx.event_id, ctx.envelope.type))

    async with bus:
        # When a plain pika producer publishes JSON to the bus exchange
        body = json.dumps({"email": "grace@example.com"}).encode()
        await asyncio.to_thread(
            _pika_publish, namespace.node.url, namespace.name, "user.created", body, "ext-42"
        )
        # Then the subscriber handles it: type from the routing key, id from message_id
        await eventually(lambda: len(got) == 1, 10, "the foreign message")
    assert got == [("grace@example.com", "ext-42", "user.created")]
