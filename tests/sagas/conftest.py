"""Fixtures of the saga tests: the application's database where the instances live, on
SQLite (through aiosqlite) and on the session's private PostgreSQL (the outbox tests' own
fixture)."""

from __future__ import annotations

from tests.outbox.conftest import database  # noqa: F401 (the fixture)
from tests.postgres_server import postgres_server  # noqa: F401 (the fixture)
