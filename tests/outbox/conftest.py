"""Fixtures of the outbox and inbox tests: the application's database (SQLite through
aiosqlite, and the session's private PostgreSQL), and the broker the relay publishes to (the
memory transport and the embedded broker)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.postgres_server import PostgresServer, postgres_server  # noqa: F401 (the fixture)

DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


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


@pytest.fixture(params=["memory", "sqlite"])
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A broker for the relay: a private ``memory://`` broker, or an embedded broker file."""
    if request.param == "memory":
        return f"memory://outbox-{uuid.uuid4().hex[:8]}"
    return f"sqlite:///{tmp_path / 'broker.db'}"
