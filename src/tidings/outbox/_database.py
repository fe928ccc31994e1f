"""The application's database as the outbox sees it: an async engine from a URL (or the
application's own engine), the dialects supported, and the tables' creation."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile

from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .._exceptions import ConfigError
from ..transports import mask_url
from ._tables import INBOX, OUTBOX, metadata

__all__ = ["Database"]

logger = logging.getLogger(__name__)

_DIALECTS = ("postgresql", "sqlite")
_EXTRA = {"asyncpg": "tidings[postgres]", "aiosqlite": "tidings[sql]"}


class Database:
    """The engine the outbox and inbox use, and whether tidings made it (and disposes it).

    Args:
        database: an async SQLAlchemy URL (``sqlite+aiosqlite:///app.db``,
            ``postgresql+asyncpg://user@host/db``) or an `AsyncEngine`. An in-memory SQLite
            URL becomes a private temporary file, deleted on `dispose`: an in-memory database
            exists on one connection only, and the relay, the inbox and the application each
            need their own.
    """

    def __init__(self, database: str | AsyncEngine) -> None:
        self._temp: str | None = None
        if isinstance(database, AsyncEngine):
            self.engine, self.owned = database, False
        elif isinstance(database, str):
            self.engine, self.owned = self._create(database), True
        else:
            raise ConfigError(
                "database must be an async SQLAlchemy URL or an AsyncEngine, "
                f"not {type(database).__name__}"
            )
        dialect = self.engine.dialect
        if dialect.name not in _DIALECTS or not dialect.is_async:
            raise ConfigError(
                f"database {self.describe()}: the outbox runs on PostgreSQL (asyncpg) and "
                "SQLite (aiosqlite): use postgresql+asyncpg:// or sqlite+aiosqlite:///"
            )

    def _create(self, url: str) -> AsyncEngine:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise ConfigError(f"database {mask_url(url)!r} is not a SQLAlchemy URL") from exc
        if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
            fd, self._temp = tempfile.mkstemp(prefix="tidings-", suffix=".db")
            os.close(fd)
            parsed = parsed.set(database=self._temp)
        try:
            return create_async_engine(parsed)
        except NoSuchModuleError as exc:
            raise ConfigError(f"database {mask_url(url)!r}: unknown dialect ({exc})") from exc
        except ImportError as exc:
            extra = _EXTRA.get(exc.name or "", "tidings[sql]")
            raise ConfigError(
                f"database {mask_url(url)!r} needs the {exc.name or 'database'} driver: "
                f"pip install '{extra}'"
            ) from exc
        except Exception as exc:  # a sync driver (InvalidRequestError) or a bad option
            raise ConfigError(
                f"database {mask_url(url)!r}: {exc}; give an async URL such as "
                "sqlite+aiosqlite:///app.db or postgresql+asyncpg://user@host/db"
            ) from exc

    @property
    def postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def describe(self) -> str:
        """The URL, password masked."""
        return repr(self.engine.url.render_as_string(hide_password=True))

    async def prepare(self, create_tables: bool) -> None:
        """Create the tables (when asked and missing), or check that they exist."""
        if create_tables:
            try:
                await self._create_all()
            except DBAPIError:
                # Two processes starting at once on PostgreSQL can race on CREATE TABLE; the
                # loser finds the tables there on a second look.
                await self._create_all()
            return
        async with self.engine.connect() as conn:
            present = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        missing = [t for t in (OUTBOX, INBOX) if t not in present]
        if missing:
            raise ConfigError(
                f"database {self.describe()} has no {' or '.join(missing)} table: run the "
                "tidings migrations (version location 'tidings.outbox:migrations'), or "
                "leave Bus(create_tables=True)"
            )

    async def _create_all(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def dispose(self) -> None:
        """Close the engine's connections if tidings made it; delete a temporary file."""
        if self.owned:
            await self.engine.dispose()
        if self._temp is not None:
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._temp + suffix)
            self._temp = None
