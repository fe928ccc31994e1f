"""The contract suite on the three-node cluster: quorum queues, through a URL naming the three
nodes (the session's cluster, `tests.rabbitmq_cluster`). The harness deletes each test's
namespace through node a, which the fault tests leave running again."""

import pytest

from tests.contract.test_rabbitmq_quorum import QuorumHarness
from tidings.contract import BusContract, TransportContract

pytestmark = [pytest.mark.rabbitmq, pytest.mark.cluster]


@pytest.fixture
async def harness(rabbitmq_cluster, redis_server):
    node = rabbitmq_cluster.node("a")
    async with QuorumHarness(node, redis_server.url, url=rabbitmq_cluster.url()) as h:
        yield h


class TestRabbitMQClusterBus(BusContract):
    pass


class TestRabbitMQClusterTransport(TransportContract):
    pass
