"""AMQP URLs are checked before anything connects, a broker that does not answer is
`BrokerUnavailable` within ``connect_timeout``, and the management API's URL follows the AMQP
URL unless one is given. None of these needs a running broker."""

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from typing import cast

import pytest

from tests.servers import free_port
from tidings import BrokerUnavailable, ConfigError, Event
from tidings.transports.rabbitmq import RabbitMQTransport, create_transport

from .conftest import one_line, start_and_close


class Ping(Event, type="ping.sent", version=1):
    n: int = 0


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("amqp://guest:s3cret@h:notaport/", "notaport"),
        ("amqp://guest:s3cret@h:99999/", "out of range"),
        ("amqp://guest:s3cret@h:0/", "port 0"),
        ("amqps://guest:s3cret@[::1/", "IPv6"),
        ("amqp://guest:s3cret@ho st/", "'ho st'"),
    ],
)
async def test_a_bad_port_or_host_is_a_config_error_before_connecting(url, named):
    # When a bus starts on a URL that cannot be used
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        await start_and_close(url)
    # Then it fails at once with one line naming the culprit, password masked
    assert time.monotonic() - started < 1.0
    text = one_line(caught.value)
    assert named in text and "s3cret" not in text
    # And the transport factory refuses it the same way
    with pytest.raises(ConfigError):
        create_transport(url, {})


@pytest.mark.parametrize("value", [0, -1, "10", True])
def test_connect_timeout_must_be_positive_seconds(value):
    with pytest.raises(ConfigError) as caught:
        create_transport("amqp://localhost/", {"connect_timeout": value})
    assert "connect_timeout" in str(caught.value)


@pytest.mark.parametrize("template", ["amqp://guest:s3cret@127.0.0.1:{port}/", "amqp://:{port}/"])
async def test_nothing_listening_is_broker_unavailable_at_once(template):
    # Given a port nothing listens on (the second URL has no host: localhost, by AMQP's rules)
    url = template.format(port=free_port())
    started = time.monotonic()
    # When a bus starts there, Then it gives up with BrokerUnavailable, not a retry loop
    with pytest.raises(BrokerUnavailable) as caught:
        await start_and_close(url, connect_timeout=5.0)
    assert time.monotonic() - started < 5.0
    text = one_line(caught.value)
    assert "cannot reach RabbitMQ" in text and "s3cret" not in text


@contextlib.contextmanager
def _silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a hung broker)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield int(server.getsockname()[1])


async def test_a_broker_that_does_not_answer_is_unavailable_after_connect_timeout():
    with _silent_listener() as port:
        url = f"amqp://guest:s3cret@127.0.0.1:{port}/"
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable) as caught:
            await start_and_close(url, connect_timeout=0.5)
        elapsed = time.monotonic() - started
    text = one_line(caught.value)
    assert "0.5s (connect_timeout)" in text and "s3cret" not in text
    assert 0.4 < elapsed < 3.0, elapsed


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) != 0


async def test_amqp_with_nothing_else_is_localhost_and_fails_when_nothing_listens():
    # `amqp://` is guest@localhost:5672, vhost "/" by the AMQP URI rules
    transport = cast(RabbitMQTransport, create_transport("amqp://", {}))
    assert (transport.address.host, transport.address.port) == ("localhost", 5672)
    assert transport.address.vhost == "/"
    # With nothing on localhost:5672 (the tests' brokers use ports of their own) starting
    # fails within the connect timeout instead of retrying forever.
    assert _port_free(5672), "something listens on localhost:5672; stop it to run this test"
    with pytest.raises(BrokerUnavailable) as caught:
        await asyncio.wait_for(start_and_close("amqp://", connect_timeout=2.0), 10)
    assert "5672" in one_line(caught.value)


@pytest.mark.parametrize(
    ("url", "options", "expected"),
    [
        ("amqp://guest:pw@rabbit.internal:5673/shop", {}, "http://rabbit.internal:15672"),
        ("amqps://guest:pw@rabbit.internal/shop", {}, "https://rabbit.internal:15671"),
        ("amqp://", {}, "http://localhost:15672"),
        ("amqp://u:p@[::1]:5672/", {}, "http://[::1]:15672"),
        (
            "amqp://guest:pw@rabbit.internal/",
            {"management_url": "http://admin:secret@mgmt.internal:8080/rabbit/"},
            "http://mgmt.internal:8080/rabbit",
        ),
    ],
)
def test_the_management_url_follows_the_amqp_url_unless_given(url, options, expected):
    transport = cast(RabbitMQTransport, create_transport(url, options))
    assert transport.management_url == expected


def test_a_malformed_management_url_is_a_config_error():
    with pytest.raises(ConfigError) as caught:
        create_transport("amqp://localhost/", {"management_url": "localhost:15672"})
    assert "management_url" in one_line(caught.value)
