"""A plugin the bus needs and the node lacks is named, with the command that enables it."""

import logging
import time
import uuid

import pytest

from tidings import Bus, ConfigError, Event

pytestmark = pytest.mark.rabbitmq


class Entry(Event, type="ledger.entry", version=1):
    account: str


async def test_an_ordered_group_without_the_consistent_hash_plugin(bare_rabbitmq_node, caplog):
    # Given a stock node (the consistent-hash exchange plugin is not enabled)
    bus = Bus(bare_rabbitmq_node.url, name=f"t{uuid.uuid4().hex[:12]}")

    @bus.subscribe("ledger.entry", group="ledger", ordered=True)
    async def post(event: Entry) -> None:
        pass

    # When a bus with an ordered group starts
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        await bus.start()
    # Then it fails at once with the plugin and the command that enables it
    assert time.monotonic() - started < 5.0
    text = str(caught.value)
    assert text == (
        "ordered group 'ledger' needs the RabbitMQ consistent-hash exchange plugin: "
        "run rabbitmq-plugins enable rabbitmq_consistent_hash_exchange"
    )
    # And the broker closing that connection is not reported as a lost connection
    noise = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert noise == []
