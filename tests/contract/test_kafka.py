"""The contract suite on Kafka (the tansu broker): one broker for the session, a fresh bus
namespace (its own topics and consumer groups) per test, its topics deleted after."""

import uuid

import pytest

from tests.kafka_server import FAST_OPTIONS, TansuBroker, delete_topics, kafka_broker  # noqa: F401
from tests.servers import redis_server  # noqa: F401
from tidings.contract import BusContract, Harness, TransportContract

pytestmark = pytest.mark.kafka


class KafkaHarness(Harness):
    """Real time, a unique bus name per test; the namespace's topics are deleted on close."""

    def __init__(self, broker: TansuBroker, redis_url: str) -> None:
        self.broker = broker
        self.prefix = f"t{uuid.uuid4().hex[:12]}"
        super().__init__(
            broker.url,
            bus_options={"name": self.prefix, "dedupe": redis_url, **FAST_OPTIONS},
            timeout=20.0,
        )

    async def make_transport(self, **options):  # type: ignore[no-untyped-def]
        for name, value in FAST_OPTIONS.items():
            options.setdefault(name, value)
        return await super().make_transport(**options)

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await delete_topics(self.broker, self.prefix)


@pytest.fixture
async def harness(kafka_broker, redis_server):  # noqa: F811
    async with KafkaHarness(kafka_broker, redis_server.url) as h:
        yield h


class TestKafkaBus(BusContract):
    pass


class TestKafkaTransport(TransportContract):
    pass
