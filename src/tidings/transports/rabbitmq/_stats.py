"""Group counters from RabbitMQ, with the optional management API (`_management`).

From AMQP (exact, always): ``ready`` (the group queue's, or partitions', message count),
``consumers``, ``scheduled`` (messages in the group's own delay-tier queues, plus ordered
retries and postponements waiting in place in this process) and ``dead`` (the DLQ's depth).
A bounded group's returns lane counts as ready; ``dead_recent`` counts this process's dead
letters, those its consumers made of unreadable messages included. AMQP cannot tell
unacknowledged messages, so ``in_flight`` is what this process's consumers hold; for a group
this process does not consume, it comes from the management API when that answers (sampled
by the broker every ``collect_statistics_interval``), else 0. Rates and the discovery of
groups declared by other processes also come from the management API; without it, stats list
the groups this transport declared or consumed and leave the rates None. ``oldest_age`` comes
from the management API's ``head_message_timestamp`` (our ``timestamp`` property, whole
seconds) of the group's queues, else 0.

When the management API does not answer, the first read logs one WARNING naming its URL,
what is missing and how to fix it (`UNREACHABLE`); it logs that again only after the API
answered in between.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence

import aiormq.exceptions
from aio_pika.abc import AbstractChannel

from ..._clock import Clock
from .._group import GroupSpec
from .._stats import GroupStats
from ._consumer import RabbitConsumer
from ._management import Management, QueueInfo
from ._wire import TIERS, Names

__all__ = ["DEAD_WINDOW", "UNREACHABLE", "Depth", "GroupCounters", "queue_depth"]

logger = logging.getLogger(__name__)

DEAD_WINDOW = 300.0
"""Seconds over which recent dead letters are counted."""

UNREACHABLE = (
    "the RabbitMQ management API at %s is unreachable (%s): stats show only AMQP counters "
    "(ready, consumers, scheduled, dead; no rates, no in-flight counts of other processes) "
    "and only for the groups this process declared (%s); give its URL with --management-url "
    "or Bus(management_url=...), or enable it: rabbitmq-plugins enable rabbitmq_management"
)
"""The one warning of a transport whose management API does not answer."""

Depth = Callable[[str], Awaitable[tuple[int, int] | None]]
"""(messages ready, consumers) of a queue, or None when it does not exist."""


async def queue_depth(
    channel: Callable[[], Awaitable[AbstractChannel]], name: str
) -> tuple[int, int] | None:
    """(messages ready, consumers) of a queue by a passive declare on `channel()` (a usable
    channel: a declare of a queue that does not exist closes it), or None when it does not
    exist."""
    underlay = await (await channel()).get_underlay_channel()
    try:
        ok = await underlay.queue_declare(name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return None
    return int(ok.message_count or 0), int(ok.consumer_count or 0)


class GroupCounters:
    """Reads `GroupStats` of every group this transport knows or the management API lists.

    Args:
        names: the bus's exchange and queue names.
        partitions: queues per ordered group.
        management: the management API client.
        depth: a passive declare of one queue (see `Depth`).
        declared: the groups this transport declared, by name.
        consumers: this process's running consumers.
        clock: the transport's clock (for the age of the oldest message).
    """

    def __init__(
        self,
        names: Names,
        partitions: int,
        management: Management,
        *,
        depth: Depth,
        declared: Callable[[], Mapping[str, GroupSpec]],
        consumers: Callable[[], Sequence[RabbitConsumer]],
        clock: Clock,
    ) -> None:
        self._names = names
        self._partitions = partitions
        self._management = management
        self._depth = depth
        self._declared = declared
        self._consumers = consumers
        self._clock = clock
        self._dead_at: dict[str, deque[float]] = {}
        self._warned = False

    def dead_lettered(self, group: str) -> None:
        """Count one dead letter of `group` made by this process."""
        self._dead_at.setdefault(group, deque()).append(time.monotonic())

    async def read(self) -> list[GroupStats]:
        """Counters of every known group, sorted by name."""
        groups, rows = await self._known_groups()
        return [
            await self._group_stats(name, ordered, rows.get(name, []))
            for name, ordered in sorted(groups.items())
        ]

    async def _known_groups(self) -> tuple[dict[str, bool], dict[str, list[QueueInfo]]]:
        names = self._names
        groups = {name: spec.ordered for name, spec in self._declared().items()}
        by_group: dict[str, list[QueueInfo]] = {}
        found = await self._management.queues(names.prefix)
        self._report(found is not None, sorted(groups))
        rows = found or []
        for row in rows:
            if row.group is not None and row.name == names.queue(row.group):
                groups.setdefault(row.group, False)
            elif row.group is not None and row.name == names.partition(row.group, 0):
                groups.setdefault(row.group, True)
        for row in rows:
            for group in groups:
                own = names.queue(group)
                if row.name == own or row.name.startswith(own + "."):
                    by_group.setdefault(group, []).append(row)
        return groups, by_group

    def _report(self, answered: bool, declared: list[str]) -> None:
        """Warn once when the management API stops answering; say when it is back."""
        management = self._management
        if answered and self._warned:
            self._warned = False
            logger.info("the RabbitMQ management API at %s answers again", management.url)
        elif not answered and not self._warned:
            self._warned = True
            shown = ", ".join(declared[:5]) or "none"
            if len(declared) > 5:
                shown += f" and {len(declared) - 5} more"
            why = management.failure or "no answer"
            logger.warning(UNREACHABLE, management.url, why, shown)

    def _main(self, group: str, ordered: bool, rows: list[QueueInfo]) -> list[str]:
        """The queues whose messages are ready: the partitions, or the queue and (for a
        bounded group) its returns lane."""
        if ordered:
            return [self._names.partition(group, n) for n in range(self._partitions)]
        main = [self._names.queue(group)]
        returns = self._names.returns(group)
        spec = self._declared().get(group)
        if (spec is not None and spec.max_ready is not None) or any(
            r.name == returns for r in rows
        ):
            main.append(returns)
        return main

    async def _group_stats(self, group: str, ordered: bool, rows: list[QueueInfo]) -> GroupStats:
        ready = consumers = scheduled = 0
        queues = self._main(group, ordered, rows)
        for name in queues:
            depth = await self._depth(name)
            if depth is not None:
                ready += depth[0]
                consumers = max(consumers, depth[1])
        for tier, _ in TIERS:
            depth = await self._depth(self._names.delay_queue(group, tier))
            scheduled += depth[0] if depth else 0
        dead = await self._depth(self._names.dlq(group))
        local = [c for c in self._consumers() if c.spec.name == group]
        main = [r for r in rows if r.name in queues]
        if local:
            in_flight = sum(len(c.active) for c in local)
            scheduled += sum(c.counts.retrying for c in local)
        else:
            in_flight = sum(r.unacked for r in main)
        rates = [r for r in main if r.publish_rate is not None or r.ack_rate is not None]
        heads = [r.head_timestamp for r in main if r.head_timestamp is not None]
        oldest = max(0.0, self._clock.time() - min(heads)) if heads and ready else 0.0
        return GroupStats(
            group=group,
            ready=ready,
            in_flight=in_flight,
            scheduled=scheduled,
            dead=dead[0] if dead else 0,
            consumers=consumers,
            oldest_age=oldest,
            publish_rate=sum(r.publish_rate or 0.0 for r in rates) if rates else None,
            ack_rate=sum(r.ack_rate or 0.0 for r in rates) if rates else None,
            dead_recent=self._dead_recent(group, rows),
        )

    def _dead_recent(self, group: str, rows: list[QueueInfo]) -> int:
        """Dead letters in the last 5 minutes: this process's own, or the DLQ's publish rate
        over that window from the management API, whichever is larger."""
        times = self._dead_at.get(group, deque())
        horizon = time.monotonic() - DEAD_WINDOW
        while times and times[0] < horizon:
            times.popleft()
        dlq = self._names.dlq(group)
        rate = max((r.publish_rate or 0.0 for r in rows if r.name == dlq), default=0.0)
        return max(len(times), round(rate * DEAD_WINDOW))
