"""The shipped Alembic migrations (branch ``tidings``, version location
``tidings.outbox:migrations``) make exactly the tables of `tidings.outbox.metadata`, and a bus
with ``create_tables=False`` runs on them (and names the migrations when they were not run)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from tidings import Bus, ConfigError
from tidings.outbox import MIGRATIONS, metadata

ENV = """
import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine


def run(connection):
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


async def main():
    engine = create_async_engine(context.config.get_main_option("sqlalchemy.url"))
    async with engine.connect() as connection:
        await connection.run_sync(run)
        await connection.commit()
    await engine.dispose()


asyncio.run(main())
"""


def alembic_config(tmp_path: Path, database: str) -> Config:
    """An application's Alembic set-up with its own (empty) versions and tidings' branch."""
    scripts = tmp_path / "alembic"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(ENV)
    config = Config()
    config.set_main_option("script_location", str(scripts))
    config.set_main_option("path_separator", "space")
    config.set_main_option("version_locations", f"{scripts / 'versions'} {MIGRATIONS}")
    config.set_main_option("sqlalchemy.url", database)
    return config


async def test_the_migrations_make_the_tables_of_the_metadata(
    tmp_path: Path, database: str
) -> None:
    config = alembic_config(tmp_path, database)
    await asyncio.to_thread(command.upgrade, config, "tidings@head")
    engine = create_async_engine(database)
    async with engine.connect() as conn:
        differences = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), metadata)
        )
    await engine.dispose()
    assert differences == []


async def test_create_tables_false_runs_on_the_migrated_tables(
    tmp_path: Path, database: str
) -> None:
    bus = Bus("memory://migrated", database=database, create_tables=False)
    with pytest.raises(ConfigError, match="tidings.outbox:migrations"):
        await bus.start()
    await bus.close()
    await asyncio.to_thread(command.upgrade, alembic_config(tmp_path, database), "tidings@head")
    async with Bus("memory://migrated", database=database, create_tables=False) as migrated:
        assert (await migrated.outbox_stats()).idle
