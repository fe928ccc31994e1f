"""Reading topics outside any consumer group: a partition from an offset up to its end (for
replay and the dead-letter queues), and compacted topics folded into tables."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped]

from ..._exceptions import BrokerUnavailable
from ._aiokafka import track
from ._errors import translate

__all__ = ["CompactedTable", "TopicReader"]

Raw: TypeAlias = Any
"""An aiokafka ``ConsumerRecord`` (the driver ships no type information)."""


class TopicReader:
    """One consumer without a group that reads any partition on request (one at a time)."""

    def __init__(self, bootstrap: str, url: str, timeout: float) -> None:
        self._url = url
        self._timeout = timeout
        self._bootstrap = bootstrap
        self._client: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    @property
    def _consumer(self) -> AIOKafkaConsumer:
        if self._client is None:
            raise BrokerUnavailable(f"the Kafka transport for {self._url} is not open")
        return self._client

    async def start(self) -> None:
        # aiokafka clients belong to the running event loop: made here, not in __init__.
        self._client = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            request_timeout_ms=int(self._timeout * 1000),
            # Offsets of a topic it has no metadata for yet fail once and are asked again
            # after this back-off, one topic per round: keep the rounds short.
            retry_backoff_ms=10,
            fetch_max_wait_ms=50,
        )
        await self._client.start()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.stop()

    async def topics(self) -> set[str]:
        """Every topic of the cluster, from fresh metadata."""
        try:
            return set(await self._consumer.topics())
        except Exception as exc:
            raise translate(exc, self._url, "reading metadata") from exc

    async def ends(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """The end offset (next offset to be written) of each partition."""
        if not partitions:
            return {}
        await track(self._consumer, {tp.topic for tp in partitions})
        try:
            return dict(await self._consumer.end_offsets(list(partitions)))
        except Exception as exc:
            raise translate(exc, self._url, "reading end offsets") from exc

    async def starts(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """The first offset still kept by each partition."""
        if not partitions:
            return {}
        await track(self._consumer, {tp.topic for tp in partitions})
        try:
            return dict(await self._consumer.beginning_offsets(list(partitions)))
        except Exception as exc:
            raise translate(exc, self._url, "reading start offsets") from exc

    async def offsets_at(
        self, partitions: Sequence[TopicPartition], at: float
    ) -> dict[TopicPartition, int]:
        """The first offset of each partition whose timestamp is at or after `at` (epoch
        seconds); the end offset where no record is that recent. A broker that answers an
        empty partition with offset 0 and timestamp -1 (tansu does) gets the end offset too,
        which is 0 there."""
        ends = await self.ends(partitions)
        try:
            found = await self._consumer.offsets_for_times(
                {tp: max(0, int(at * 1000)) for tp in partitions}
            )
        except Exception as exc:
            raise translate(exc, self._url, "looking up offsets by time") from exc
        out: dict[TopicPartition, int] = {}
        for tp in partitions:
            hit = found.get(tp)
            out[tp] = ends[tp] if hit is None or hit.timestamp < 0 else hit.offset
        return out

    async def read(self, tp: TopicPartition, start: int, end: int) -> list[Raw]:
        """The records of `tp` from `start` up to (not including) `end`."""
        if start >= end:
            return []
        async with self._lock:
            try:
                return await self._read(tp, start, end)
            except BrokerUnavailable:
                raise
            except Exception as exc:
                raise translate(exc, self._url, f"reading topic {tp.topic!r}") from exc
            finally:
                # No fetch left waiting in the background: a broker answers one request
                # of a connection at a time, so a long-polling fetch would hold up the
                # offset look-ups behind it.
                self._consumer.unsubscribe()

    async def _read(self, tp: TopicPartition, start: int, end: int) -> list[Raw]:
        consumer = self._consumer
        consumer.assign([tp])
        consumer.seek(tp, start)
        out: list[Raw] = []
        deadline = time.monotonic() + self._timeout
        while True:
            batch = await consumer.getmany(tp, timeout_ms=100)
            out.extend(r for r in batch.get(tp, []) if r.offset < end)
            if await consumer.position(tp) >= end:
                return out
            if time.monotonic() > deadline:
                raise BrokerUnavailable(
                    f"reading topic {tp.topic!r} on {self._url} did not reach offset {end} "
                    f"in {self._timeout:g}s"
                )


class CompactedTable:
    """A compacted one-partition topic folded into a table: the last value of each key, in
    the order the keys were last written; a tombstone (no value) removes its key.

    `refresh` reads what was written since the last refresh."""

    def __init__(self, reader: TopicReader, topic: str) -> None:
        self.topic = topic
        self._reader = reader
        self._tp = TopicPartition(topic, 0)
        self._position = 0
        self.rows: dict[str, Raw] = {}
        self._lock = asyncio.Lock()

    async def refresh(self) -> dict[str, Raw]:
        """Catch up with the topic and return the table."""
        async with self._lock:
            end = (await self._reader.ends([self._tp]))[self._tp]
            if end < self._position:  # the topic was deleted and made again
                self._position, self.rows = 0, {}
            if self._position == 0:
                self._position = (await self._reader.starts([self._tp]))[self._tp]
            for record in await self._reader.read(self._tp, self._position, end):
                if record.key is None:
                    continue
                key = record.key.decode("utf-8", "replace")
                self.rows.pop(key, None)
                if record.value is not None:
                    self.rows[key] = record
            self._position = max(self._position, end)
            return self.rows
