"""The contract suite on RabbitMQ: a private node for the session, a fresh bus namespace (its
own exchanges and queues) per test, deleted after the test."""

import uuid

import pytest

from tests.servers import RabbitNode, delete_namespace, rabbitmq_node, redis_server  # noqa: F401
from tidings.contract import BusContract, Harness, TransportContract

pytestmark = pytest.mark.rabbitmq


class RabbitHarness(Harness):
    """Real time, a unique bus name per test; the namespace is deleted on close."""

    def __init__(self, node: RabbitNode, redis_url: str) -> None:
        self.node = node
        self.prefix = f"t{uuid.uuid4().hex[:12]}"
        super().__init__(
            node.url,
            bus_options={
                "name": self.prefix,
                "dedupe": redis_url,
                "management_url": node.management_url,
            },
            # A max_ready bound needs quorum queues (x-max-length with reject-publish).
            bounded_bus_options={"queue_type": "quorum"},
        )

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await delete_namespace(self.node, self.prefix)


@pytest.fixture
async def harness(rabbitmq_node, redis_server):  # noqa: F811
    async with RabbitHarness(rabbitmq_node, redis_server.url) as h:
        yield h


class TestRabbitMQBus(BusContract):
    pass


class TestRabbitMQTransport(TransportContract):
    pass
