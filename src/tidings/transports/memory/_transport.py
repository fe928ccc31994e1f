"""The in-process transport (``memory://``): the same semantics as the brokers, no durability.

Buses in one process that name the same ``memory://NAME`` share one broker (`MemoryBroker`),
so a publisher bus and a worker bus in one test talk to each other. Time comes from the
transport's clock, so with a `ManualClock` retries wait for ``clock.advance`` instead of real
time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from ..._exceptions import ConfigError, DeadLetterNotFound
from .._failure import Failure, RawDeadLetter
from .._group import GroupSpec
from .._message import Delivery, OutgoingMessage
from .._options import TransportOptions
from .._routing import matches
from .._stats import GroupStats
from .._transport import (
    CAP_ATOMIC_BATCH,
    CAP_DEDUPE,
    CAP_REPLAY_LOG,
    Consumer,
    DedupeStore,
    Deliver,
    OnReply,
    Replies,
    Transport,
)
from ._bound import check_bounds
from ._broker import Entry, MemoryBroker, Queue
from ._consumer import MemoryConsumer
from ._dedupe import MemoryDedupe
from ._replies import MemoryReplies, send_reply

__all__ = ["MemoryTransport"]


class MemoryTransport(Transport):
    """In-process broker binding for tests and single-process tools.

    A publish call is all or nothing: with ``on_unroutable="error"`` a call holding an
    unroutable message stores none of it (`CAP_ATOMIC_BATCH`), and a call that would take a
    group past its ``max_ready`` raises `QueueFull` and stores none of it. Retries,
    postponements, dead letters sent back and replays are never refused. Only events that reached a
    group are kept in the retained log.

    Args:
        url: ``memory://NAME``; transports of one name share a broker.
        options: the common settings (`clock`, `retention` and `on_unroutable` are used
            here).
        broker: a broker of its own instead of the shared one of `url` (`tidings.testing`
            gives each test bus a private one).
    """

    scheme = "memory"
    capabilities = frozenset({CAP_REPLAY_LOG, CAP_DEDUPE, CAP_ATOMIC_BATCH})

    def __init__(
        self, url: str, options: TransportOptions, broker: MemoryBroker | None = None
    ) -> None:
        super().__init__(url, options)
        self.broker = broker if broker is not None else MemoryBroker.shared(url)
        self._consumers: list[MemoryConsumer] = []
        self._dedupe = MemoryDedupe(self.broker, options.clock)

    def now(self) -> float:
        """The transport clock's time, in epoch seconds."""
        return self.options.clock.time()

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        for consumer in self._consumers:
            await consumer.stop(0)
        self._consumers.clear()

    async def declare(self, groups: Sequence[GroupSpec]) -> None:
        for spec in groups:
            queue = self.broker.queues.get(spec.name)
            if queue is None:
                self.broker.queues[spec.name] = Queue(spec)
            else:
                queue.spec = spec
        self.broker.notify()

    def _enqueue(self, queue: Queue, message: OutgoingMessage, now: float) -> None:
        entry = Entry(
            seq=self.broker.next_seq(),
            message=message,
            enqueued_at=now,
            available_at=now + max(0.0, message.delay),
        )
        queue.entries.append(entry)
        queue.published.append(now)

    def _targets(self, message: OutgoingMessage) -> list[Queue]:
        """The queues `message` goes to: the one it is sent to, or every matching group."""
        if message.group is not None:
            queue = self.broker.queues.get(message.group)
            return [] if queue is None else [queue]
        return [
            q
            for q in self.broker.queues.values()
            if any(matches(p, message.type) for p in q.spec.patterns)
        ]

    def _atomic(self) -> bool:
        # A subclass without the capability (one standing in for a broker that cannot
        # refuse a batch) stores the routable messages of a call.
        return CAP_ATOMIC_BATCH in self.capabilities and self.options.on_unroutable == "error"

    async def publish(self, messages: Sequence[OutgoingMessage]) -> list[bool]:
        now = self.now()
        targets = [self._targets(message) for message in messages]
        routed = [bool(queues) for queues in targets]
        if not all(routed) and self._atomic():
            # All or nothing: the bus raises `Unroutable` for the call, none of it went out.
            return routed
        check_bounds(targets, now)
        for message, queues in zip(messages, targets, strict=True):
            if queues and message.group is None:
                # Only what reached a group is retained: a replay never brings back an
                # event that nobody received.
                self.broker.log.append((now, message))
            for queue in queues:
                self._enqueue(queue, message, now)
        self._trim_log(now)
        self.broker.notify()
        return routed

    def _trim_log(self, now: float) -> None:
        horizon = now - self.options.retention
        log = self.broker.log
        while log and log[0][0] < horizon:
            log.pop(0)

    async def consume(self, group: GroupSpec, deliver: Deliver) -> Consumer:
        queue = self.broker.queues.get(group.name)
        if queue is None:
            await self.declare([group])
            queue = self.broker.queues[group.name]
        consumer = MemoryConsumer(self.broker, queue, deliver, self.options.clock)
        self._consumers.append(consumer)
        return consumer

    def _settle(self, delivery: Delivery) -> tuple[Queue, Entry] | None:
        entry = delivery.handle
        queue = self.broker.queues.get(delivery.group)
        if not isinstance(entry, Entry) or queue is None or entry not in queue.entries:
            return None
        return queue, entry

    async def ack(self, delivery: Delivery) -> None:
        found = self._settle(delivery)
        if found:
            queue, entry = found
            queue.entries.remove(entry)
            queue.acked.append(self.now())
        self.broker.notify()

    async def retry_later(self, delivery: Delivery, delay: float, failure: Failure) -> None:
        found = self._settle(delivery)
        if found:
            _, entry = found
            entry.leased = False
            entry.returned = True
            # From the delivery, not the entry: the default `Transport.postpone` (which a
            # wrapper of this transport may use) relies on it to count no attempt.
            entry.attempt = delivery.attempt + 1
            entry.first_failed_at = entry.first_failed_at or failure.at
            entry.available_at = self.now() + max(0.0, delay)
        self.broker.notify()

    async def postpone(self, delivery: Delivery, delay: float) -> None:
        # In place, attempt and first failure untouched: an ordered key keeps its head.
        found = self._settle(delivery)
        if found:
            _, entry = found
            entry.leased = False
            entry.returned = True
            entry.available_at = self.now() + max(0.0, delay)
        self.broker.notify()

    async def dead_letter(self, delivery: Delivery, failure: Failure) -> None:
        found = self._settle(delivery)
        if found:
            queue, entry = found
            queue.bury(entry, failure)
        self.broker.notify()

    def _queue(self, group: str) -> Queue:
        queue = self.broker.queues.get(group)
        if queue is None:
            raise DeadLetterNotFound(f"no group named {group!r}")
        return queue

    async def dlq_list(self, group: str, limit: int, offset: int) -> list[RawDeadLetter]:
        queue = self.broker.queues.get(group)
        return [] if queue is None else queue.dead[offset : offset + limit]

    async def dlq_get(self, group: str, entry_id: str) -> RawDeadLetter:
        for entry in self._queue(group).dead:
            if entry.entry_id == entry_id:
                return entry
        raise DeadLetterNotFound(f"no dead letter {entry_id!r} in group {group!r}")

    async def dlq_replay(
        self,
        group: str,
        entry_ids: Sequence[str] | None,
        rebuild: Callable[[RawDeadLetter], OutgoingMessage],
    ) -> int:
        queue = self.broker.queues.get(group)
        if queue is None:
            return 0
        chosen = [d for d in queue.dead if entry_ids is None or d.entry_id in set(entry_ids)]
        now = self.now()
        for dead in chosen:
            message = replace(rebuild(dead), group=group)
            self._enqueue(queue, message, now)
            queue.dead.remove(dead)
        self.broker.notify()
        return len(chosen)

    async def dlq_purge(self, group: str, entry_ids: Sequence[str] | None) -> int:
        queue = self.broker.queues.get(group)
        if queue is None:
            return 0
        keep = [d for d in queue.dead if entry_ids is not None and d.entry_id not in entry_ids]
        purged = len(queue.dead) - len(keep)
        queue.dead = keep
        return purged

    async def stats(self) -> list[GroupStats]:
        now = self.now()
        return [queue.stats(now) for _, queue in sorted(self.broker.queues.items())]

    async def replay(self, group: str, since: float) -> int:
        queue = self.broker.queues.get(group)
        if queue is None:
            raise ConfigError(f"no group named {group!r} to replay into")
        now = self.now()
        count = 0
        for published_at, message in list(self.broker.log):
            if published_at >= since and any(matches(p, message.type) for p in queue.spec.patterns):
                self._enqueue(queue, replace(message, replayed=True, delay=0.0), now)
                count += 1
        self.broker.notify()
        return count

    async def open_replies(self, on_reply: OnReply) -> Replies:
        return MemoryReplies(self.broker, on_reply)

    async def send_reply(self, address: str, message: OutgoingMessage) -> None:
        send_reply(self.broker, address, message)

    def dedupe_store(self) -> DedupeStore:
        return self._dedupe

    async def ping(self) -> None:
        return None
