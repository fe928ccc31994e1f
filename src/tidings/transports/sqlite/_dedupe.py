"""Dedupe markers kept in the broker file itself, group-committed with everything else."""

from __future__ import annotations

from collections.abc import Callable

from .._transport import DedupeStore
from ._ops import DedupeMarkOp
from ._queries import is_marked
from ._store import ReaderThread, WriterThread

__all__ = ["SqliteDedupeStore"]


class SqliteDedupeStore(DedupeStore):
    """Dedupe markers in the broker file; marks are group-committed with everything else.

    Args:
        reader: the open transport's reader thread (raises while the transport is closed).
        writer: the open transport's writer thread (likewise).
    """

    def __init__(
        self, reader: Callable[[], ReaderThread], writer: Callable[[], WriterThread]
    ) -> None:
        self._reader = reader
        self._writer = writer

    async def seen(self, group: str, event_id: str) -> bool:
        return await self._reader().read(lambda conn, now: is_marked(conn, now, group, event_id))

    async def mark(self, group: str, event_id: str, ttl: float) -> None:
        await self._writer().submit(DedupeMarkOp(group, event_id, ttl))
