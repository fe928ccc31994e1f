"""The embedded broker (``sqlite:///path.db``): one SQLite file shared by the processes of a
host."""

from __future__ import annotations

from ._transport import SqliteTransport, sqlite_path

__all__ = ["SqliteTransport", "sqlite_path"]
