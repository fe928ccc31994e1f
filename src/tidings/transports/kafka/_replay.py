"""Replay by time: the group's event topics are read from the first offset at or after
`since` (offsets for times) up to where they end now, and each record is sent again to the
group's command topic, marked replayed and with its retry bookkeeping dropped."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import TopicPartition  # type: ignore[import-untyped]

from ._log import TopicReader
from ._publisher import Producer
from ._wire import H_ATTEMPT, H_DUE_AT, H_FIRST_FAILED, H_LAST_FAILED, H_REPLAYED, Record

__all__ = ["replay_group"]

_DROPPED = {H_ATTEMPT, H_DUE_AT, H_FIRST_FAILED, H_LAST_FAILED, H_REPLAYED}


async def replay_group(
    reader: TopicReader,
    producer: Producer,
    commands: str,
    partitions: Sequence[TopicPartition],
    since: float,
    now: float,
) -> int:
    """Send the records of `partitions` written at or after `since` to `commands`; return
    how many."""
    starts = await reader.offsets_at(partitions, since)
    ends = await reader.ends(partitions)
    cutoff = int(since * 1000)
    moved = 0
    for tp in partitions:
        batch: list[tuple[str, Record]] = []
        for record in await reader.read(tp, starts[tp], ends[tp]):
            if record.timestamp < cutoff:
                continue
            headers = [(k, v) for k, v in record.headers if k not in _DROPPED]
            headers.append((H_REPLAYED, b"1"))
            batch.append((commands, Record(record.key, record.value, headers, int(now * 1000))))
        await producer.send_many(batch)
        moved += len(batch)
    return moved
