"""Committed offsets of consumer groups this process is not a member of: what `stats` needs
for a group's lag, and the first commit that makes a new group start at the end of the
topics that existed before it.
Offsets of many partitions are read in one request where `_aiokafka.batched` allows it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped]

from ._aiokafka import batched
from ._errors import translate

__all__ = ["CommittedOffsets"]

logger = logging.getLogger(__name__)


class CommittedOffsets:
    """One group-less observer consumer per consumer group, started on first use."""

    def __init__(self, bootstrap: str, url: str, timeout: float) -> None:
        self._bootstrap = bootstrap
        self._url = url
        self._timeout = timeout
        self._observers: dict[str, AIOKafkaConsumer] = {}
        self._lock = asyncio.Lock()

    async def _observer(self, consumer_group: str) -> AIOKafkaConsumer:
        async with self._lock:
            observer = self._observers.get(consumer_group)
            if observer is None:
                observer = AIOKafkaConsumer(
                    bootstrap_servers=self._bootstrap,
                    group_id=consumer_group,
                    enable_auto_commit=False,
                    request_timeout_ms=int(self._timeout * 1000),
                )
                try:
                    await observer.start()
                except Exception as exc:
                    await observer.stop()
                    raise translate(exc, self._url, "reading committed offsets") from exc
                self._observers[consumer_group] = observer
            return observer

    async def read(
        self, consumer_group: str, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int | None]:
        """The committed offset of each partition (None: the group never committed it)."""
        if not partitions:
            return {}
        observer = await self._observer(consumer_group)
        fetch = batched(observer)
        try:
            if fetch is not None:
                found = await fetch(list(partitions))
                return {
                    tp: (found[tp].offset if tp in found and found[tp].offset >= 0 else None)
                    for tp in partitions
                }
            return {tp: await observer.committed(tp) for tp in partitions}
        except Exception as exc:
            raise translate(exc, self._url, "reading committed offsets") from exc

    async def commit(self, consumer_group: str, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit `offsets` for a group that has no member yet (a new group's start)."""
        if not offsets:
            return
        observer = await self._observer(consumer_group)
        async with self._lock:
            observer.assign(list(offsets))
            try:
                await observer.commit(dict(offsets))
            except Exception as exc:
                logger.info("group %s: start offsets not committed: %s", consumer_group, exc)
            finally:
                observer.unsubscribe()

    async def close(self) -> None:
        observers, self._observers = list(self._observers.values()), {}
        for observer in observers:
            try:
                await observer.stop()
            except Exception as exc:
                logger.debug("closing an offsets observer failed: %s", exc)
