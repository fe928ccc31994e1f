"""Topics and consumer groups through the admin client: create what a bus needs (once per
process; an existing topic is fine), list, delete, and count a group's members."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiokafka import TopicPartition  # type: ignore[import-untyped]
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped]

from ..._exceptions import BrokerUnavailable
from ._errors import translate

__all__ = ["TopicSpec", "Topology"]

logger = logging.getLogger(__name__)

_EXISTS = 36
"""TOPIC_ALREADY_EXISTS: another process created it first."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """How to create one topic: partitions, and whether it is compacted (a table by key)."""

    partitions: int
    compacted: bool = False


class Topology:
    """The admin client of one transport, with the set of topics known to exist."""

    def __init__(self, bootstrap: str, url: str, replication: int, timeout: float) -> None:
        self._url = url
        self._replication = replication
        self._bootstrap = bootstrap
        self._timeout = timeout
        self._client: AIOKafkaAdminClient | None = None
        self._known: set[str] = set()
        self._partitions: dict[str, int] = {}
        self._lock = asyncio.Lock()

    @property
    def _admin(self) -> AIOKafkaAdminClient:
        if self._client is None:
            raise BrokerUnavailable(f"the Kafka transport for {self._url} is not open")
        return self._client

    async def start(self) -> None:
        # aiokafka clients belong to the running event loop: made here, not in __init__.
        self._client = AIOKafkaAdminClient(
            bootstrap_servers=self._bootstrap, request_timeout_ms=int(self._timeout * 1000)
        )
        await self._client.start()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def topics(self, *, refresh: bool = False) -> set[str]:
        """The topics of the cluster (cached; `refresh` asks the broker again)."""
        if refresh or not self._known:
            try:
                self._known = set(await self._admin.list_topics())
            except Exception as exc:
                raise translate(exc, self._url, "listing topics") from exc
        return self._known

    async def ensure(self, wanted: Mapping[str, TopicSpec]) -> None:
        """Create the topics of `wanted` that this process has not seen yet."""
        missing = [name for name in wanted if name not in self._known]
        if not missing:
            return
        async with self._lock:
            missing = [name for name in missing if name not in self._known]
            if not missing:
                return
            new = [self._new_topic(name, wanted[name]) for name in missing]
            try:
                response = await self._admin.create_topics(new)
            except Exception as exc:
                raise translate(exc, self._url, "creating topics") from exc
            for topic, code, message in _errors(response):
                if code not in (0, _EXISTS):
                    raise BrokerUnavailable(
                        f"Kafka at {self._url} refused to create topic {topic!r}: "
                        f"{message or f'error code {code}'}"
                    )
            self._known.update(missing)

    def _new_topic(self, name: str, spec: TopicSpec) -> NewTopic:
        configs = {"cleanup.policy": "compact"} if spec.compacted else {}
        return NewTopic(name, spec.partitions, self._replication, topic_configs=configs)

    async def partitions(self, topics: Iterable[str]) -> list[TopicPartition]:
        """The partitions of existing `topics` (counts cached: they only grow)."""
        chosen = list(topics)
        unknown = [t for t in chosen if t not in self._partitions]
        if unknown:
            try:
                described = await self._admin.describe_topics(unknown)
            except Exception as exc:
                raise translate(exc, self._url, "describing topics") from exc
            for topic in described:
                if topic.get("error_code", 0) == 0 and topic.get("partitions"):
                    self._partitions[topic["topic"]] = len(topic["partitions"])
        return [TopicPartition(t, n) for t in chosen for n in range(self._partitions.get(t, 0))]

    async def delete(self, names: Iterable[str]) -> None:
        """Delete topics (those that exist); used for a bus's reply inbox."""
        chosen = list(names)
        if not chosen:
            return
        try:
            await self._admin.delete_topics(chosen)
        except Exception as exc:
            logger.debug("deleting topics %s failed: %s", chosen, exc)
        self._known.difference_update(chosen)
        for topic in chosen:
            self._partitions.pop(topic, None)

    async def members(self, consumer_group: str) -> int:
        """Live members of a consumer group (0 when it has none or does not exist)."""
        try:
            described = await self._admin.describe_consumer_groups([consumer_group])
        except Exception as exc:
            raise translate(exc, self._url, "describing consumer groups") from exc
        count = 0
        for response in described:
            for group in getattr(response, "groups", ()):
                if group[1] == consumer_group and group[2] not in ("Dead", "Empty"):
                    count += len(group[5])
        return count


def _errors(response: object) -> list[tuple[str, int, str | None]]:
    rows = getattr(response, "topic_errors", ()) or ()
    out: list[tuple[str, int, str | None]] = []
    for row in rows:
        topic, code = row[0], row[1]
        message = row[2] if len(row) > 2 else None
        out.append((str(topic), int(code), message))
    return out
