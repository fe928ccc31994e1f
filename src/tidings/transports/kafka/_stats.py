"""Group counters from offsets: a group's lag on its event and command topics is what waits
(``ready``), its lag on its retry topics is what is ``scheduled``; this process's consumers
move what they hold from those to ``in_flight`` (other processes' deliveries in flight count
as ready or scheduled: Kafka does not know what a consumer holds). ``consumers`` are the
members of the consumer group; ``dead`` the entries of the group's DLQ
(``dead_recent`` those of the last five minutes)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiokafka import TopicPartition  # type: ignore[import-untyped]

from .._routing import matches
from .._stats import GroupStats
from ._bindings import Binding
from ._committed import CommittedOffsets
from ._consumer import GroupConsumer
from ._log import TopicReader
from ._names import Names

__all__ = ["Counters"]


class Counters:
    """Computes `GroupStats` for the groups of one bus."""

    def __init__(
        self,
        names: Names,
        reader: TopicReader,
        partitions: Callable[[Iterable[str]], Awaitable[list[TopicPartition]]],
        committed: CommittedOffsets,
        members: Callable[[str], Awaitable[int]],
        dead: Callable[[str], Awaitable[tuple[int, int]]],
    ) -> None:
        self._names = names
        self._reader = reader
        self._partitions = partitions
        self._committed = committed
        self._members = members
        self._dead = dead

    def topics_of(self, binding: Binding, topics: Iterable[str]) -> tuple[list[str], list[str]]:
        """(event and command topics, retry topics) of a group among `topics`."""
        retries = set(self._names.retries(binding.group))
        commands = self._names.commands(binding.group)
        main, retry = [], []
        for topic in topics:
            type_ = self._names.event_type(topic)
            if topic == commands or (
                type_ is not None and any(matches(p, type_) for p in binding.patterns)
            ):
                main.append(topic)
            elif topic in retries:
                retry.append(topic)
        return main, retry

    async def lag(self, group: str, topics: list[str]) -> int:
        """Records of `topics` the group has not committed."""
        partitions = await self._partitions(topics)
        ends = await self._reader.ends(partitions)
        written = [tp for tp in partitions if ends.get(tp, 0) > 0]
        committed = await self._committed.read(self._names.consumer_group(group), written)
        never = [tp for tp in written if committed.get(tp) is None]
        starts = await self._reader.starts(never)
        total = 0
        for tp in written:
            at = committed.get(tp)
            total += max(0, ends[tp] - (at if at is not None else starts.get(tp, 0)))
        return total

    async def group(
        self, binding: Binding, topics: set[str], local: list[GroupConsumer]
    ) -> GroupStats:
        main, retry = self.topics_of(binding, topics)
        lag_main = await self.lag(binding.group, main)
        lag_retry = await self.lag(binding.group, retry)
        held_main = held_retry = waiting = 0
        for consumer in local:
            m, r, w = consumer.counts()
            held_main, held_retry, waiting = held_main + m, held_retry + r, waiting + w
        dead, recent = await self._dead(binding.group)
        return GroupStats(
            group=binding.group,
            ready=max(0, lag_main - held_main - waiting),
            in_flight=held_main + held_retry,
            scheduled=max(0, lag_retry - held_retry) + waiting,
            dead=dead,
            dead_recent=recent,
            consumers=await self._members(self._names.consumer_group(binding.group)),
        )
