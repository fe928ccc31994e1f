"""Fixtures of the outbox and inbox tests: the application's database (SQLite through
aiosqlite, and the session's private PostgreSQL), and the broker the relay publishes to (the
memory transport, the embedded broker, and a namespace of the session's RabbitMQ node)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.postgres_server import PostgresServer, postgres_server  # noqa: F401 (the fixture)
from tests.servers import RabbitNode, delete_namespace, rabbitmq_node  # noqa: F401

DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
AMQP = pytest.param("amqp", id="amqp", marks=pytest.mark.rabbitmq)


@dataclass(frozen=True)
class Broker:
    """Where the relay publishes: a URL and the `Bus` options it needs there."""

    url: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.options.get("name", "tidings"))


@pytest.fixture(params=DATABASES)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The async SQLAlchemy URL of a new, empty application database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    yield await server.create_database()


@pytest.fixture
async def postgres(postgres_server: PostgresServer) -> str:  # noqa: F811
    """A new PostgreSQL database."""
    return await postgres_server.create_database()


async def _broker(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Broker]:
    if kind == "memory":
        yield Broker(f"memory://outbox-{uuid.uuid4().hex[:8]}")
    elif kind == "sqlite":
        yield Broker(f"sqlite:///{tmp_path / 'broker.db'}")
    else:
        node: RabbitNode = request.getfixturevalue("rabbitmq_node")
        name = f"ob{uuid.uuid4().hex[:12]}"
        try:
            yield Broker(node.url, {"name": name, "management_url": node.management_url})
        finally:
            await delete_namespace(node, name)


@pytest.fixture(params=["memory", "sqlite", AMQP])
async def broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Broker]:
    """A broker for the relay: a private ``memory://`` broker, an embedded broker file, or a
    RabbitMQ namespace of its own (deleted after the test)."""
    async for made in _broker(request.param, request, tmp_path):
        yield made


@pytest.fixture(params=["sqlite", AMQP])
async def shared_broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Broker]:
    """A broker that processes share: an embedded broker file, or a RabbitMQ namespace."""
    async for made in _broker(request.param, request, tmp_path):
        yield made
