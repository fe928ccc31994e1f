"""Fixtures for the RabbitMQ transport tests: the session's private node and Redis, and a
fresh bus namespace per test (deleted afterwards)."""

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest

from tests.servers import RabbitNode, delete_namespace, rabbitmq_node, redis_server  # noqa: F401
from tidings import Bus


async def wait_for(predicate: Callable[[], bool | Awaitable[bool]], timeout: float, what: str):
    """Wait until `predicate` holds, checking every 20 ms; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.02)


class Namespace:
    """Buses on one unique bus name, closed (and the namespace deleted) after the test."""

    def __init__(self, node: RabbitNode, redis_url: str) -> None:
        self.node = node
        self.redis_url = redis_url
        self.name = f"t{uuid.uuid4().hex[:12]}"
        self.buses: list[Bus] = []

    def bus(self, **options) -> Bus:
        options.setdefault("name", self.name)
        options.setdefault("management_url", self.node.management_url)
        bus = Bus(self.node.url, **options)
        self.buses.append(bus)
        return bus

    def queue(self, group: str) -> str:
        return f"{self.name}.{group}"

    async def aclose(self) -> None:
        for bus in reversed(self.buses):
            # a test may have closed it already; the namespace goes anyway
            with contextlib.suppress(Exception):
                await bus.close(drain_timeout=2.0)
        await delete_namespace(self.node, self.name)


@pytest.fixture
async def namespace(rabbitmq_node, redis_server):  # noqa: F811
    ns = Namespace(rabbitmq_node, redis_server.url)
    try:
        yield ns
    finally:
        await ns.aclose()
