"""An ordered group's waiting retries, written down: a compacted topic keyed by partition
and offset, holding a waiting record's attempt count, its first failure and when it is due
(a tombstone once it is settled for good). A worker that gets the partition after a restart
reads it, so the record comes again as the next attempt at its due time (Kafka only
remembers the offset; tansu drops the metadata of an offset commit, so the count cannot
ride on the commit)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiokafka import TopicPartition  # type: ignore[import-untyped]

from ._log import CompactedTable

__all__ = ["AttemptStore"]

Send = Callable[[str, bytes, bytes | None], Awaitable[None]]
"""Produces (topic, key, value) with the broker's acknowledgement."""


def _key(tp: TopicPartition, offset: int) -> str:
    return f"{tp.topic}/{tp.partition}/{offset}"


class AttemptStore:
    """The attempts topic of one ordered group."""

    def __init__(self, table: CompactedTable, send: Send) -> None:
        self._table = table
        self._send = send

    async def remember(
        self, tp: TopicPartition, offset: int, attempt: int, first: float, due: float
    ) -> None:
        """The record at `offset` of `tp` failed `attempt` times and waits until `due`."""
        value = {"attempt": attempt, "first_failed_at": first, "due": due}
        await self._send(self._table.topic, _key(tp, offset).encode(), json.dumps(value).encode())

    async def forget(self, tp: TopicPartition, offset: int) -> None:
        """The record at `offset` of `tp` is settled for good: a tombstone for its count."""
        await self._send(self._table.topic, _key(tp, offset).encode(), None)

    async def waiting(
        self, partitions: set[TopicPartition]
    ) -> dict[TopicPartition, dict[int, tuple[int, float | None, float]]]:
        """Per partition of `partitions`, the retries written down and not settled since:
        offset -> (attempts made, first failure, due). An entry whose record was committed
        meanwhile is never fetched again, so it is never used."""
        rows = await self._table.refresh()
        wanted = {(tp.topic, tp.partition): tp for tp in partitions}
        out: dict[TopicPartition, dict[int, tuple[int, float | None, float]]] = {}
        for key, record in rows.items():
            try:
                topic, partition, offset = key.rsplit("/", 2)
                tp = wanted.get((topic, int(partition)))
                if tp is None or record.value is None:
                    continue
                value = json.loads(record.value)
                out.setdefault(tp, {})[int(offset)] = (
                    int(value["attempt"]),
                    float(value["first_failed_at"]),
                    float(value["due"]),
                )
            except (ValueError, KeyError, TypeError):
                continue
        return out
