"""RabbitMQ has no dedupe store of its own: ``idempotent=True`` needs ``Bus(dedupe=...)``."""

import pytest

from tidings import ConfigError

pytestmark = pytest.mark.rabbitmq


async def test_idempotent_without_a_store_is_refused_at_start(namespace):
    from tidings import Event

    class Ping(Event, type="ping.sent"):
        n: int

    bus = namespace.bus()

    @bus.subscribe("ping.sent", group="pings", idempotent=True)
    async def pong(event: Ping) -> None:
        pass

    with pytest.raises(ConfigError, match="dedupe"):
        await bus.start()
