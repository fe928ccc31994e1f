"""An ordered group's waiting retries, written down: a compacted topic keyed by partition,
holding the offset of the record that waits, its attempt count, its first failure and when
it is due. A worker that gets the partition after a restart reads it, so the record comes
again as the next attempt at its due time (Kafka only remembers the offset; tansu drops the
metadata of an offset commit, so the count cannot ride on the commit)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiokafka import TopicPartition  # type: ignore[import-untyped]

from ._log import CompactedTable

__all__ = ["AttemptStore"]

Send = Callable[[str, bytes, bytes | None], Awaitable[None]]
"""Produces (topic, key, value) with the broker's acknowledgement."""


def _key(tp: TopicPartition) -> str:
    return f"{tp.topic}/{tp.partition}"


class AttemptStore:
    """The attempts topic of one ordered group."""

    def __init__(self, table: CompactedTable, send: Send) -> None:
        self._table = table
        self._send = send

    async def remember(
        self, tp: TopicPartition, offset: int, attempt: int, first: float, due: float
    ) -> None:
        """The record at `offset` of `tp` failed `attempt` times and waits until `due`."""
        value = {"offset": offset, "attempt": attempt, "first_failed_at": first, "due": due}
        await self._send(self._table.topic, _key(tp).encode(), json.dumps(value).encode())

    async def waiting(
        self, partitions: set[TopicPartition]
    ) -> dict[TopicPartition, tuple[int, int, float | None, float]]:
        """Per partition of `partitions`, the retry written down last: (offset, attempts
        made, first failure, due). The caller uses it only when the partition's first record
        is at that offset (a later commit makes it stale)."""
        rows = await self._table.refresh()
        out: dict[TopicPartition, tuple[int, int, float | None, float]] = {}
        for tp in partitions:
            record = rows.get(_key(tp))
            if record is None or record.value is None:
                continue
            try:
                value = json.loads(record.value)
                out[tp] = (
                    int(value["offset"]),
                    int(value["attempt"]),
                    float(value["first_failed_at"]),
                    float(value["due"]),
                )
            except (ValueError, KeyError, TypeError):
                continue
        return out
