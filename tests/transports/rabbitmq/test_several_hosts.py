"""A URL naming several nodes (``amqp://u:p@h1:5672,h2:5672/vhost``): checked before anything
connects, the first node that answers is used, and a node that goes away hands the clients to
the next (here: a port nobody listens on and the session's node; the cluster tests fail over
between real nodes)."""

import asyncio

import pytest

from tests.servers import free_port
from tests.support import eventually
from tidings import BrokerUnavailable, Bus, ConfigError, Context
from tidings.transports.rabbitmq import RabbitMQTransport, create_transport

from .conftest import Note, one_line

pytestmark = pytest.mark.rabbitmq


@pytest.fixture(params=["wrapped", "fallback"])
def failover(request, monkeypatch) -> str:
    """Both ways of going round the nodes: the wrapped connection attempt (every node per
    attempt) and the fallback on public means only (one node per attempt)."""
    if request.param == "fallback":
        from tidings.transports.rabbitmq import _failover

        monkeypatch.setattr(_failover, "supported", lambda: False)
    return str(request.param)


def _hosts(*ports: int) -> str:
    return "amqp://guest:guest@" + ",".join(f"127.0.0.1:{p}" for p in ports) + "/"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("amqp://u:pw@h1:1,h2:99999/", "Port out of range"),
        ("amqp://u:pw@h1:1,,h2:2/", "an empty host"),
        ("amqp://u:pw@h1:1,h 2:2/", "cannot parse the host 'h 2'"),
        ("amqp://u:pw@h1:1,h2:0/", "port 0"),
    ],
)
def test_a_bad_host_in_the_list_is_a_config_error_naming_it_with_the_password_masked(
    url: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        create_transport(url, {})
    text = one_line(caught.value)
    assert expected in text
    assert "pw" not in text and "u:***@" in text


def test_every_host_gets_its_port_or_the_scheme_default() -> None:
    transport = create_transport("amqps://u:p@a:1,b,[::1]:3/v", {})
    assert isinstance(transport, RabbitMQTransport)
    assert transport.address.hosts == (("a", 1), ("b", 5671), ("::1", 3))
    assert transport.address.driver_urls() == [
        "amqps://u:p@a:1/v",
        "amqps://u:p@b:5671/v",
        "amqps://u:p@[::1]:3/v",
    ]


async def test_the_first_node_that_answers_is_used(namespace, failover) -> None:
    # Given a URL whose first node does not listen and whose second is the session's node
    url = _hosts(free_port(), namespace.node.amqp_port)
    handled: list[int] = []
    bus = Bus(url, name=namespace.name, management_url=namespace.node.management_url)
    namespace.buses.append(bus)

    @bus.subscribe("note.kept", group="notes")
    async def keep(event: Note, ctx: Context) -> None:
        handled.append(event.n)

    # When the bus starts and publishes
    async with bus:
        await bus.publish(Note(n=1))
        # Then it connected to the second node, where the event went round
        await eventually(lambda: handled == [1], 10, "the event handled")


async def test_no_node_answering_is_one_line_naming_every_node(namespace) -> None:
    # Given two nodes, neither listening
    first, second = free_port(), free_port()
    bus = Bus(_hosts(first, second), name=namespace.name, connect_timeout=2.0)
    # When the bus starts, Then it fails at once with one line, the password masked
    with pytest.raises(BrokerUnavailable) as caught:
        await bus.start()
    text = one_line(caught.value)
    assert "guest:guest" not in text
    assert str(second) in text


async def test_a_lost_node_hands_the_publisher_to_the_next_within_publish_timeout(
    namespace, failover
) -> None:
    # Given a publisher connected to the session's node, listed before a node that is down
    url = _hosts(namespace.node.amqp_port, free_port())
    bus = Bus(
        url,
        name=namespace.name,
        consume=False,
        management_url=namespace.node.management_url,
        publish_timeout=60.0,
        reconnect_interval=0.2,
        replay_stream=False,  # a stream is unavailable for a moment after its node restarts
    )
    namespace.buses.append(bus)

    @bus.subscribe("note.kept", group="notes")
    async def keep(event: Note) -> None:
        return None

    async with bus:
        await bus.publish(Note(n=1))
        # When the node stops (the other one never answers) and a publish is made meanwhile
        await asyncio.to_thread(namespace.node.stop)
        waiting = asyncio.create_task(bus.publish(Note(n=2)))
        await asyncio.to_thread(namespace.node.start)
        # Then the publish, trying the nodes in turn, returns once the node is back
        await waiting
        await bus.publish(Note(n=3))
    # Then every publish reached the group's queue
    await eventually(lambda: _ready_at_least(namespace, 3), 20, "3 messages in the queue")


async def _ready_at_least(namespace, count: int) -> bool:
    return await namespace.ready("notes") >= count
