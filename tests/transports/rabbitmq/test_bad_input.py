"""Bad input gives one clear line naming what to fix, with the password masked."""

import asyncio
import socket

import pika
import pytest

from tidings import BrokerUnavailable, ConfigError, Event, MessageTooLarge

from .conftest import Note, declare_notes, one_line, start_and_close

pytestmark = pytest.mark.rabbitmq


class Blob(Event, type="blob.stored", version=1):
    data: str


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_wrong_credentials_name_the_login_and_mask_the_password(rabbitmq_node):
    url = f"amqp://guest:s3cret-pw@127.0.0.1:{rabbitmq_node.amqp_port}/"
    with pytest.raises(ConfigError) as caught:
        await start_and_close(url, name="badlogin")
    text = one_line(caught.value)
    assert "s3cret-pw" not in text and "***" in text
    assert "user name and password" in text


async def test_an_unreachable_host_is_broker_unavailable(rabbitmq_node):
    url = f"amqp://guest:s3cret-pw@127.0.0.1:{_closed_port()}/"
    with pytest.raises(BrokerUnavailable) as caught:
        await start_and_close(url, name="nowhere")
    text = one_line(caught.value)
    assert "cannot reach RabbitMQ" in text and "s3cret-pw" not in text


async def test_a_missing_vhost_is_named(rabbitmq_node):
    url = f"amqp://guest:guest@127.0.0.1:{rabbitmq_node.amqp_port}/no-such-vhost"
    with pytest.raises(ConfigError) as caught:
        await start_and_close(url, name="novhost")
    text = one_line(caught.value)
    assert "virtual host" in text and "no-such-vhost" in text


async def test_a_message_over_the_limit_is_refused(namespace):
    # Our own limit is checked before sending
    bus = namespace.bus(max_message_size=1000)

    @bus.subscribe("blob.stored", group="store")
    async def store(event: Blob) -> None:
        pass

    async with bus:
        with pytest.raises(MessageTooLarge) as caught:
            await bus.publish(Blob(data="x" * 5000))
        assert "max_message_size" in one_line(caught.value)


async def test_the_brokers_own_size_limit_is_reported(namespace):
    # The node refuses messages over 1 MiB; our limit is set higher
    bus = namespace.bus(max_message_size=4 * 1024 * 1024, publish_timeout=5.0)

    @bus.subscribe("blob.stored", group="store")
    async def store(event: Blob) -> None:
        pass

    async with bus:
        with pytest.raises(MessageTooLarge) as caught:
            await bus.publish(Blob(data="x" * (2 * 1024 * 1024)))
        one_line(caught.value)
        # and the bus still publishes afterwards
        await bus.publish(Blob(data="small"))


async def test_a_queue_declared_with_other_arguments_names_the_argument(namespace):
    # Given the group's queue already exists as a quorum queue
    def declare_quorum() -> None:
        connection = pika.BlockingConnection(pika.URLParameters(namespace.node.url))
        try:
            connection.channel().queue_declare(
                namespace.queue("store"), durable=True, arguments={"x-queue-type": "quorum"}
            )
        finally:
            connection.close()

    await asyncio.to_thread(declare_quorum)
    # When a bus declares it as a classic queue
    bus = namespace.bus()

    @bus.subscribe("blob.stored", group="store")
    async def store(event: Blob) -> None:
        pass

    with pytest.raises(ConfigError) as caught:
        await bus.start()
    text = one_line(caught.value)
    assert "x-queue-type" in text and namespace.queue("store") in text


async def test_an_id_too_long_for_amqp_fails_alone_with_what_to_do(namespace):
    # Given a bus publishing a burst in which one event has an id of 300 bytes
    bus = await declare_notes(namespace)
    results = await asyncio.gather(
        *(bus.publish(Note(n=n), id="i" * 300 if n == 3 else None) for n in range(8)),
        return_exceptions=True,
    )
    # Then that one publish says what is wrong and what to do, and the others went through
    assert isinstance(results[3], ConfigError)
    assert "at most 255 bytes" in one_line(results[3]) and "shorter id" in str(results[3])
    assert all(isinstance(r, str) for n, r in enumerate(results) if n != 3)
