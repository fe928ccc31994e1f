"""Kafka URLs and options: checked before anything connects, one clear line each; a broker
that does not answer is `BrokerUnavailable` naming the (masked) bootstrap servers."""

from __future__ import annotations

import pytest

from tests.servers import free_port
from tidings import BrokerUnavailable, Bus, ConfigError, NotSupported
from tidings.transports import GroupSpec, matches, open_transport
from tidings.transports.kafka import KafkaOptions, KafkaTransport


def test_servers_and_options_come_from_the_url_and_the_keywords() -> None:
    t = open_transport(
        "kafka://h1,h2:9093?session_timeout=2&heartbeat_interval=0.5&partitions=3",
        {"partitions": 4},
    )
    assert isinstance(t, KafkaTransport)
    assert t.address.servers == ("h1:9092", "h2:9093")
    # keyword options win over the URL's query
    assert (t.settings.partitions, t.settings.session_timeout) == (4, 2.0)


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("kafka://h:99999", {}, "bad port '99999'"),
        ("kafka://", {}, "empty host"),
        ("kafka://h/path", {}, "takes no path"),
        ("kafka://user:secret@h", {}, r"credentials .* \('kafka://user:\*\*\*@h'\)"),
        ("kafka://h?nope=1", {}, "unknown kafka option 'nope' in the URL"),
        ("kafka://h?partitions=many", {}, "partitions must be a number"),
        ("kafka://h", {"partitons": 3}, "unknown kafka option"),
        ("kafka://h", {"partitions": 0}, "partitions must be a positive integer"),
        ("kafka://h", {"session_timeout": 1, "heartbeat_interval": 2}, "must be shorter"),
        ("kafka://h", {"name": "my bus"}, "bus name 'my bus' cannot name a Kafka topic"),
    ],
)
def test_bad_urls_and_options_are_one_clear_line(
    url: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        open_transport(url, options)
    assert "\n" not in str(caught.value)
    assert "secret" not in str(caught.value)


def test_option_values_are_checked() -> None:
    with pytest.raises(ConfigError, match="drain_timeout must be a positive number"):
        KafkaOptions(drain_timeout=-1)


@pytest.mark.parametrize(
    ("pattern", "types"),
    [
        ("order.*", ["order.placed", "order.x"]),
        ("order.#", ["order", "order.placed", "order.placed.eu"]),
        ("#", ["order", "a.b.c"]),
        ("*.placed", ["order.placed"]),
    ],
)
def test_a_groups_subscription_takes_the_topics_its_patterns_route(
    pattern: str, types: list[str]
) -> None:
    import re

    t = open_transport("kafka://h", {"name": "shop"})
    assert isinstance(t, KafkaTransport)
    regex = re.compile(t.names.subscription("g", (pattern,)))
    candidates = ["order", "order.placed", "order.x", "order.placed.eu", "a.b.c", "x.placed"]
    for type_ in candidates:
        assert bool(regex.match(t.names.event(type_))) == matches(pattern, type_), type_
    assert all(regex.match(t.names.event(type_)) for type_ in types)
    # its own command and retry topics; never another group's topics or the bindings
    assert regex.match(t.names.commands("g")) and regex.match(t.names.retry("g", "1s"))
    for other in (t.names.commands("h"), t.names.dlq("g"), t.names.bindings):
        assert not regex.match(other)


async def test_a_broker_that_does_not_answer_is_broker_unavailable_naming_it() -> None:
    port = free_port()
    bus = Bus(f"kafka://127.0.0.1:{port}", connect_timeout=2)
    with pytest.raises(BrokerUnavailable, match=f"127.0.0.1:{port}") as caught:
        await bus.start()
    assert "\n" not in str(caught.value)


async def test_max_ready_is_not_supported() -> None:
    t = open_transport("kafka://h", {})
    with pytest.raises(NotSupported, match="max_ready"):
        await t.declare([GroupSpec("bounded", ("order.*",), max_ready=3)])
