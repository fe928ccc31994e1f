"""The dead-letter queues of one namespace on the embedded broker: listing, fetching,
replaying (moving entries back to their group) and purging."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

from ..._exceptions import DeadLetterNotFound
from .._failure import RawDeadLetter
from .._message import OutgoingMessage
from ._ops import DlqMoveOp, DlqPurgeOp
from ._queries import dead_letter_bound, dead_letters_by_id, dead_letters_page
from ._store import ReaderThread, WriterThread

__all__ = ["DeadLetterQueues"]

_PAGE = 500


class DeadLetterQueues:
    """The dead-letter queues of the groups of namespace `ns`.

    Args:
        reader: the open transport's reader thread (raises while the transport is closed).
        writer: the open transport's writer thread (likewise).
        ns: the namespace (the bus name).
    """

    def __init__(
        self, reader: Callable[[], ReaderThread], writer: Callable[[], WriterThread], ns: str
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._ns = ns

    async def list(self, group: str, limit: int, offset: int) -> list[RawDeadLetter]:
        """Dead letters of `group`, oldest first."""
        ns = self._ns
        page = await self._reader().read(
            lambda conn, now: dead_letters_page(conn, now, ns, group, limit, offset)
        )
        return [entry for _, entry in page]

    async def get(self, group: str, entry_id: str) -> RawDeadLetter:
        """One dead letter; raise `DeadLetterNotFound` when missing."""
        ns = self._ns
        found = await self._reader().read(
            lambda conn, now: dead_letters_by_id(conn, now, ns, group, [entry_id])
        )
        if not found:
            raise DeadLetterNotFound(f"no dead letter {entry_id!r} in group {group!r}")
        return found[0][1]

    async def replay(
        self,
        group: str,
        entry_ids: Sequence[str] | None,
        rebuild: Callable[[RawDeadLetter], OutgoingMessage],
    ) -> int:
        """Move entries (all when `entry_ids` is None) back to `group` a page at a time;
        each page's messages and the deletion of its entries commit together. Returns how
        many moved."""
        reader, writer = self._reader(), self._writer()
        ns = self._ns
        moved = 0
        if entry_ids is not None:
            ids = list(entry_ids)
            for start in range(0, len(ids), _PAGE):
                chunk = ids[start : start + _PAGE]
                page = await reader.read(
                    lambda conn, now, chunk=chunk: dead_letters_by_id(conn, now, ns, group, chunk)  # type: ignore[misc]
                )
                moved += await _move(writer, group, [e for _, e in page], rebuild)
            return moved
        upto = await reader.read(lambda conn, now: dead_letter_bound(conn, now, ns, group))
        after = 0
        while True:
            page = await reader.read(
                lambda conn, now, after=after: dead_letters_page(  # type: ignore[misc]
                    conn, now, ns, group, _PAGE, after=after, upto=upto
                )
            )
            if not page:
                return moved
            after = page[-1][0]
            moved += await _move(writer, group, [e for _, e in page], rebuild)

    async def purge(self, group: str, entry_ids: Sequence[str] | None) -> int:
        """Delete entries (all when `entry_ids` is None); return how many."""
        ids = None if entry_ids is None else list(entry_ids)
        return cast(int, await self._writer().submit(DlqPurgeOp(group, ids)))


async def _move(
    writer: WriterThread,
    group: str,
    entries: list[RawDeadLetter],
    rebuild: Callable[[RawDeadLetter], OutgoingMessage],
) -> int:
    if not entries:
        return 0
    moves = [(entry.entry_id, rebuild(entry)) for entry in entries]
    return cast(int, await writer.submit(DlqMoveOp(group, moves)))
