"""The contract suite on RabbitMQ with quorum queues (``queue_type="quorum"``): every group's
queue, delay tiers and dead-letter queue are quorum queues; one node (the session's)."""

import pytest

from tests.servers import RabbitNode, rabbitmq_node, redis_server  # noqa: F401
from tidings.contract import BusContract, TransportContract

from .test_rabbitmq import RabbitHarness

pytestmark = pytest.mark.rabbitmq


class QuorumHarness(RabbitHarness):
    """`RabbitHarness` with quorum queues, on `url` when given (a cluster's)."""

    def __init__(self, node: RabbitNode, redis_url: str, url: str | None = None) -> None:
        super().__init__(node, redis_url)
        self.url = url or self.url
        self.bus_options["queue_type"] = "quorum"


@pytest.fixture
async def harness(rabbitmq_node, redis_server):  # noqa: F811
    async with QuorumHarness(rabbitmq_node, redis_server.url) as h:
        yield h


class TestRabbitMQQuorumBus(BusContract):
    pass


class TestRabbitMQQuorumTransport(TransportContract):
    pass
