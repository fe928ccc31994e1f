"""`tidings demo shop --url kafka://...`: the shop in worker processes on the tansu broker."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from tests.kafka_server import TansuBroker, delete_topics, kafka_broker  # noqa: F401
from tests.support import Children

from .test_demo import holds, shop_plan, summary

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

FAST = "session_timeout=2&heartbeat_interval=0.2&metadata_max_age=0.5&partitions=3&max_batch_size=1"


async def test_demo_shop_on_kafka(
    children: Children,
    tmp_path: Path,
    kafka_broker: TansuBroker,  # noqa: F811
) -> None:
    # Given the private tansu broker and a bus name of our own (the shop's groups use the
    # inbox, so they need no dedupe store); the URL's query carries the fast test options
    # to every worker process
    work = tmp_path / "work"
    work.mkdir()
    name = f"demo{uuid.uuid4().hex[:10]}"
    url = f"{kafka_broker.url}?{FAST}"
    args = ["demo", "shop", "--url", url, "--name", name, "--orders", "30"]
    try:
        # When the shop demo runs on it, in worker processes
        demo = children.tidings(*args, "--time-scale", "0.05", "--json", cwd=work)
        assert await asyncio.to_thread(demo.wait, 120) == 0, demo.log
    finally:
        await delete_topics(kafka_broker, name)
    # Then every order ends as the plan says, and the invariants hold
    result = summary(demo)
    assert result["processes"] == 3
    assert result["counts"] == shop_plan(7, 30)
    holds(result)
