"""Fixtures for the RabbitMQ transport tests: the session's private node and Redis, a node
with no plugins (started only by the tests that need one), and a fresh bus namespace per test
(deleted afterwards). Waits come from `tests.support`."""

import asyncio
import contextlib
import uuid

import aio_pika
import aiormq
import pika
import pytest
from pamqp import commands as spec

from tests.servers import (  # noqa: F401 - session fixtures
    RabbitNode,
    bare_rabbitmq_node,
    delete_namespace,
    rabbitmq_node,
    redis_server,
)
from tidings import Bus, Event
from tidings.transports.rabbitmq._aiormq import PendingPublish
from tidings.transports.rabbitmq._reader import bulk_reading, remember_socket


class Note(Event, type="note.kept", version=1):
    n: int
    text: str = ""


class Stray(Event, type="stray.event", version=1):
    """An event no group subscribes to."""

    n: int


async def declare_notes(namespace: "Namespace") -> Bus:
    """A publish-only bus on which group `notes` subscribes to note.kept (declared)."""
    bus = namespace.bus(consume=False)

    @bus.subscribe("note.kept", group="notes")
    async def keep(event: Note) -> None:
        pass

    await bus.start()
    return bus


class Namespace:
    """Buses on one unique bus name, closed (and the namespace deleted) after the test."""

    def __init__(self, node: RabbitNode, redis_url: str) -> None:
        self.node = node
        self.redis_url = redis_url
        self.name = f"t{uuid.uuid4().hex[:12]}"
        self.buses: list[Bus] = []

    def bus(self, **options) -> Bus:
        options.setdefault("name", self.name)
        options.setdefault("management_url", self.node.management_url)
        bus = Bus(self.node.url, **options)
        self.buses.append(bus)
        return bus

    def queue(self, group: str) -> str:
        return f"{self.name}.{group}"

    async def ready(self, group: str) -> int:
        """Messages ready in a group's queue (a passive declare on a connection of our own)."""
        connection = await aio_pika.connect(self.node.url)
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(self.queue(group), passive=True)
            return int(queue.declaration_result.message_count or 0)
        finally:
            await connection.close()

    async def aclose(self) -> None:
        for bus in reversed(self.buses):
            # a test may have closed it already; the namespace goes anyway
            with contextlib.suppress(Exception):
                await bus.close(drain_timeout=2.0)
        await delete_namespace(self.node, self.name)


@pytest.fixture
async def namespace(rabbitmq_node, redis_server):  # noqa: F811
    ns = Namespace(rabbitmq_node, redis_server.url)
    try:
        yield ns
    finally:
        await ns.aclose()


def publish_raw(url: str, queue: str, messages: list[tuple[str, bytes, str | None, dict]]) -> None:
    """Put messages (message id, body, content type, headers) straight into `queue`, as
    another producer would, through a plain client with confirms (synchronous: run it in a
    thread)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for message_id, body, content_type, headers in messages:
            channel.basic_publish(
                "",
                queue,
                body,
                pika.BasicProperties(
                    content_type=content_type,
                    headers=headers,
                    message_id=message_id,
                    delivery_mode=2,
                ),
                mandatory=True,
            )
    finally:
        connection.close()


def one_line(exc: BaseException) -> str:
    """The error's text, which must be one line."""
    text = str(exc)
    assert "\n" not in text, text
    return text


@pytest.fixture
async def confirm_channel(rabbitmq_node):  # noqa: F811
    """(channel, queue): a confirm channel on an aiormq connection made as tidings makes its
    own (bulk reading, socket remembered), and an auto-delete queue; closed afterwards."""
    with bulk_reading() as made:
        connection = await aiormq.connect(rabbitmq_node.url)
    remember_socket(connection, made)
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = f"confirms-{uuid.uuid4().hex[:8]}"
        await channel.queue_declare(queue, auto_delete=True)
        yield channel, queue
    finally:
        await connection.close()


def pending_publish(routing_key: str, n: int) -> PendingPublish:
    """A persistent publish of body ``str(n)`` (message id ``m<n>``) to the default exchange."""
    outcome = asyncio.get_running_loop().create_future()
    properties = spec.Basic.Properties(message_id=f"m{n}", delivery_mode=2)
    return PendingPublish("", routing_key, str(n).encode(), properties, outcome)


async def start_and_close(url: str, **options) -> None:
    """Start a bus with one group on `url` (connect and declare), then close it."""
    bus = Bus(url, **options)

    @bus.subscribe("ping.sent", group="pings")
    async def ping(event: dict) -> None:
        return None

    try:
        await bus.start()
    finally:
        await bus.close(drain_timeout=1.0)
