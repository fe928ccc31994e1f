"""The scenarios on Kafka (the tansu broker): the same tests as on the other transports, on
a bus name of their own per test (its topics deleted afterwards), with the private Redis as
the dedupe store of the idempotent groups. The shop also runs in worker processes through
``tidings demo shop --url kafka://...`` (``tests/cli/test_demo_kafka.py``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from tests.kafka_server import FAST_OPTIONS, TansuBroker, delete_topics, kafka_broker  # noqa: F401
from tests.servers import redis_server  # noqa: F401

from .conftest import Broker
from .test_shop import test_every_order_is_completed_or_compensated  # noqa: F401
from .test_signup import test_signups_succeed_while_email_is_down  # noqa: F401
from .test_streaming import test_flaky_analytics_does_not_disturb_the_others  # noqa: F401

pytestmark = [pytest.mark.kafka]


@pytest.fixture
async def broker(kafka_broker: TansuBroker, redis_server) -> AsyncIterator[Broker]:  # noqa: F811
    """The session's tansu broker, with a bus name of the test's own."""
    name = f"ex{uuid.uuid4().hex[:12]}"
    try:
        yield Broker(kafka_broker.url, {"name": name, "dedupe": redis_server.url, **FAST_OPTIONS})
    finally:
        await delete_topics(kafka_broker, name)
