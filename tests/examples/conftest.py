"""Fixtures of the example tests: every scenario runs on every transport we have.

``amqp`` runs on the session's private RabbitMQ node (see `tests.servers`), each test on a
bus name of its own (its exchanges and queues, deleted afterwards), with the private Redis
as the dedupe store of the idempotent groups.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.servers import (  # noqa: F401 - session fixtures used through getfixturevalue
    RabbitNode,
    delete_namespace,
    rabbitmq_node,
    redis_server,
)
from tidings import Bus, Context, Middleware, Outcome

# Seconds a scenario may take to settle (RabbitMQ on a loaded machine is the slowest).
SETTLE = 20.0

TRANSPORTS = ["memory", "sqlite", pytest.param("amqp", marks=pytest.mark.rabbitmq)]


class Broker:
    """Where a test's scenario runs: a URL and the `Bus` options it needs there."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.options = options or {}


@pytest.fixture(params=TRANSPORTS)
async def broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Broker]:
    """A fresh broker of each transport."""
    if request.param == "memory":
        yield Broker(f"memory://examples-{uuid.uuid4().hex}")
    elif request.param == "sqlite":
        yield Broker(f"sqlite:///{tmp_path / 'examples.db'}")
    else:
        node: RabbitNode = request.getfixturevalue("rabbitmq_node")
        redis = request.getfixturevalue("redis_server")
        name = f"ex{uuid.uuid4().hex[:12]}"
        options = {"name": name, "dedupe": redis.url, "management_url": node.management_url}
        try:
            yield Broker(node.url, options)
        finally:
            await delete_namespace(node, name)


@pytest.fixture
def url(broker: Broker) -> str:
    """The broker's URL."""
    return broker.url


@pytest.fixture
def bus_options(broker: Broker) -> dict[str, Any]:
    """What `create_bus` needs besides the URL on this broker (nothing on memory, sqlite)."""
    return dict(broker.options)


async def idle(bus: Bus, groups: Iterable[str]) -> bool:
    """True when none of `groups` has anything ready, in flight or scheduled."""
    stats = {s.group: s for s in await bus.stats()}
    return all(
        g in stats and not (stats[g].ready or stats[g].in_flight or stats[g].scheduled)
        for g in groups
    )


class Handled(Middleware):
    """A consume middleware counting, per group, the deliveries handled (acknowledged) and
    the attempts that failed (retried or dead-lettered), from each delivery's outcome."""

    def __init__(self) -> None:
        self.handled: dict[str, list[str]] = {}
        self.failed: dict[str, list[str]] = {}

    async def consume(
        self, ctx: Context, call_next: Callable[[], Awaitable[Outcome]]
    ) -> Outcome | None:
        outcome = await call_next()
        if outcome.kind == "ack":
            self.handled.setdefault(ctx.group, []).append(ctx.event_id)
        elif outcome.kind in ("retry", "dead_letter"):
            self.failed.setdefault(ctx.group, []).append(ctx.event_id)
        return outcome

    def count(self, group: str) -> int:
        return len(self.handled.get(group, ()))


def keys_seen(store: dict[str, set[str]], field: str) -> Callable[[dict[str, Any], Context], Any]:
    """A handler recording ``data[field]`` under the event type in `store`."""

    async def record(data: dict[str, Any], ctx: Context) -> None:
        store.setdefault(ctx.envelope.type, set()).add(str(data[field]))

    return record
