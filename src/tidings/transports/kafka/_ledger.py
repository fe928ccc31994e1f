"""Offsets settle out of order; commits stay contiguous. A `Ledger` per partition tracks the
records fetched and not yet settled; the `Committer` commits, per partition, the offset
before which everything has settled (so a crash re-delivers, never skips)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]

__all__ = ["Committer", "Ledger"]

logger = logging.getLogger(__name__)


class Ledger:
    """The records of one partition fetched and not yet settled.

    Args:
        start: the offset of the first record fetched from the partition.
    """

    def __init__(self, start: int) -> None:
        self._pending: deque[int] = deque()
        self._done: set[int] = set()
        self._next = start

    def fetched(self, offset: int) -> None:
        """A record was taken from the partition (records come in offset order)."""
        self._pending.append(offset)
        self._next = offset + 1

    def settle(self, offset: int) -> None:
        """The record at `offset` is settled for good."""
        self._done.add(offset)
        while self._pending and self._pending[0] in self._done:
            self._done.discard(self._pending.popleft())

    @property
    def commit_point(self) -> int:
        """The offset to commit: the first unsettled record, or the one after the last."""
        return self._pending[0] if self._pending else self._next

    @property
    def unsettled(self) -> int:
        return len(self._pending) - len(self._done)


class Committer:
    """Commits the ledgers' commit points that moved; concurrent callers share a commit."""

    def __init__(self, consumer: AIOKafkaConsumer, ledgers: dict[TopicPartition, Ledger]) -> None:
        self._consumer = consumer
        self._ledgers = ledgers
        self._committed: dict[TopicPartition, int] = {}
        self._lock = asyncio.Lock()

    async def flush(self, only: set[TopicPartition] | None = None) -> None:
        """Commit every partition whose commit point moved (those of `only`, if given).

        A commit the group refuses (it rebalanced meanwhile) is logged and dropped: the
        partition's new owner starts at the last commit, so records come again, at least
        once, never lost."""
        async with self._lock:
            offsets = {
                tp: ledger.commit_point
                for tp, ledger in self._ledgers.items()
                if (only is None or tp in only) and ledger.commit_point != self._committed.get(tp)
            }
            if not offsets:
                return
            try:
                await self._consumer.commit(offsets)
            except (KafkaError, AssertionError) as exc:
                logger.info(
                    "offsets not committed (%s: %s); records may come again",
                    type(exc).__name__,
                    exc,
                )
                return
            self._committed.update(offsets)

    def forget(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self._committed.pop(tp, None)
