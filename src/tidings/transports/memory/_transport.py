"""The in-process transport (``memory://``): the same semantics as the brokers, no durability.

Buses in one process that name the same ``memory://NAME`` share one broker, so a publisher
bus and a worker bus in one test talk to each other. Time comes from the transport's clock,
so with a `ManualClock` retries wait for ``clock.advance`` instead of real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from ..._exceptions import ConfigError, DeadLetterNotFound
from .._failure import Failure, RawDeadLetter
from .._group import GroupSpec
from .._message import Delivery, OutgoingMessage
from .._options import TransportOptions
from .._routing import matches
from .._stats import GroupStats
from .._transport import CAP_DEDUPE, CAP_REPLAY_LOG, Consumer, DedupeStore, Deliver, Transport

__all__ = ["MemoryBroker", "MemoryTransport"]

_RATE_WINDOW = 60.0
_DEAD_WINDOW = 300.0


@dataclass(slots=True, eq=False)
class _Entry:
    seq: int
    message: OutgoingMessage
    enqueued_at: float
    available_at: float
    attempt: int = 1
    leased: bool = False
    first_failed_at: float | None = None


@dataclass(slots=True, eq=False)
class _Queue:
    spec: GroupSpec
    entries: list[_Entry] = field(default_factory=list)
    dead: list[RawDeadLetter] = field(default_factory=list)
    consumers: int = 0
    published: list[float] = field(default_factory=list)
    acked: list[float] = field(default_factory=list)


class MemoryBroker:
    """The shared state behind every `MemoryTransport` of one name."""

    def __init__(self) -> None:
        self.queues: dict[str, _Queue] = {}
        self.log: list[tuple[float, OutgoingMessage]] = []
        self.markers: dict[tuple[str, str], float] = {}
        self._seq = itertools.count(1)
        self._changed: list[asyncio.Event] = []
        self.version = 0

    def next_seq(self) -> int:
        return next(self._seq)

    def notify(self) -> None:
        """Wake every waiter: something was published, settled or declared."""
        self.version += 1
        for event in list(self._changed):
            event.set()

    def watch(self) -> asyncio.Event:
        event = asyncio.Event()
        self._changed.append(event)
        return event

    def unwatch(self, event: asyncio.Event) -> None:
        with contextlib.suppress(ValueError):
            self._changed.remove(event)

    def idle(self, now: float) -> bool:
        """True when no delivery is ready now or in flight."""
        if any(e.leased for q in self.queues.values() for e in q.entries):
            return False
        return not any(e.available_at <= now for q in self.queues.values() for e in _takeable(q))

    def next_available(self) -> float | None:
        """Earliest availability time of a delivery a consumer could take, if any."""
        times = [e.available_at for q in self.queues.values() for e in _takeable(q)]
        return min(times) if times else None


def _takeable(queue: _Queue) -> Iterator[_Entry]:
    """Unleased entries a consumer may take once they are due: in an ordered group only the
    head of each key (the later ones wait behind it, even while it waits for a retry)."""
    heads: set[str] = set()
    for entry in queue.entries:
        key = entry.message.key
        if queue.spec.ordered and key is not None:
            if key in heads:
                continue
            heads.add(key)
        if not entry.leased:
            yield entry


_BROKERS: dict[str, MemoryBroker] = {}


def _broker_for(url: str) -> MemoryBroker:
    if not url.startswith("memory://"):
        raise ConfigError(f"not a memory URL: {url!r}")
    return _BROKERS.setdefault(url[len("memory://") :].strip("/"), MemoryBroker())


class _MemoryDedupe(DedupeStore):
    def __init__(self, transport: MemoryTransport) -> None:
        self._t = transport

    async def seen(self, group: str, event_id: str) -> bool:
        expires = self._t.broker.markers.get((group, event_id))
        return expires is not None and expires > self._t.now()

    async def mark(self, group: str, event_id: str, ttl: float) -> None:
        self._t.broker.markers[(group, event_id)] = self._t.now() + ttl


class _MemoryConsumer(Consumer):
    def __init__(self, transport: MemoryTransport, queue: _Queue, deliver: Deliver) -> None:
        self._t = transport
        self._queue = queue
        self._deliver = deliver
        self._tasks: dict[asyncio.Task[None], _Entry] = {}
        self._wake = transport.broker.watch()
        self._stopping = False
        queue.consumers += 1
        self._loop_task = asyncio.create_task(self._run(), name=f"tidings-memory-{queue.spec.name}")

    def _claimable(self, now: float) -> list[_Entry]:
        spec = self._queue.spec
        room = spec.concurrency - len(self._tasks)
        if room <= 0:
            return []
        out: list[_Entry] = []
        blocked: set[str] = set()
        for entry in self._queue.entries:
            key = entry.message.key
            if spec.ordered and key is not None:
                if key in blocked:
                    continue
                blocked.add(key)
            if entry.leased or entry.available_at > now:
                continue
            out.append(entry)
            if len(out) >= room:
                break
        return out

    async def _run(self) -> None:
        clock = self._t.options.clock
        while not self._stopping:
            self._wake.clear()
            now = clock.time()
            for entry in self._claimable(now):
                entry.leased = True
                delivery = Delivery(
                    group=self._queue.spec.name,
                    id=entry.message.id,
                    type=entry.message.type,
                    body=entry.message.body,
                    content_type=entry.message.content_type,
                    headers=dict(entry.message.headers),
                    key=entry.message.key,
                    attempt=entry.attempt,
                    replayed=entry.message.replayed,
                    first_failed_at=entry.first_failed_at,
                    handle=entry,
                )
                task = asyncio.create_task(self._deliver(delivery))
                self._tasks[task] = entry
                task.add_done_callback(self._done)
            # Sleep until this group's next scheduled delivery (a retry, a delayed publish),
            # or until something changes.
            pending = min(
                (e.available_at for e in _takeable(self._queue) if e.available_at > now),
                default=None,
            )
            if pending is not None:
                await clock.sleep_until(pending, self._wake)
            else:
                await self._wake.wait()

    def _done(self, task: asyncio.Task[None]) -> None:
        entry = self._tasks.pop(task, None)
        if entry is not None and entry.leased and task.cancelled():
            # The callback never settled: the delivery returns to the group, attempt counted.
            entry.leased = False
            entry.attempt += 1
            self._t.broker.notify()
        self._wake.set()

    async def stop(self, timeout: float) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        self._loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._loop_task
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        self._queue.consumers -= 1
        self._t.broker.unwatch(self._wake)
        self._t.broker.notify()


class MemoryTransport(Transport):
    """In-process broker binding for tests and single-process tools."""

    scheme = "memory"
    capabilities = frozenset({CAP_REPLAY_LOG, CAP_DEDUPE})

    def __init__(
        self, url: str, options: TransportOptions, broker: MemoryBroker | None = None
    ) -> None:
        super().__init__(url, options)
        self.broker = broker if broker is not None else _broker_for(url)
        self._consumers: list[_MemoryConsumer] = []
        self._dedupe = _MemoryDedupe(self)

    def now(self) -> float:
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
                self.broker.queues[spec.name] = _Queue(spec)
            else:
                queue.spec = spec
        self.broker.notify()

    def _enqueue(self, queue: _Queue, message: OutgoingMessage, now: float) -> None:
        entry = _Entry(
            seq=self.broker.next_seq(),
            message=message,
            enqueued_at=now,
            available_at=now + max(0.0, message.delay),
        )
        queue.entries.append(entry)
        queue.published.append(now)

    async def publish(self, messages: Sequence[OutgoingMessage]) -> list[bool]:
        now = self.now()
        routed: list[bool] = []
        for message in messages:
            if message.group is not None:
                queues = [q for name, q in self.broker.queues.items() if name == message.group]
            else:
                self.broker.log.append((now, message))
                queues = [
                    q
                    for q in self.broker.queues.values()
                    if any(matches(p, message.type) for p in q.spec.patterns)
                ]
            for queue in queues:
                self._enqueue(queue, message, now)
            routed.append(bool(queues))
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
        consumer = _MemoryConsumer(self, queue, deliver)
        self._consumers.append(consumer)
        return consumer

    def _settle(self, delivery: Delivery) -> tuple[_Queue, _Entry] | None:
        entry = delivery.handle
        queue = self.broker.queues.get(delivery.group)
        if not isinstance(entry, _Entry) or queue is None or entry not in queue.entries:
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
            entry.attempt += 1
            entry.first_failed_at = entry.first_failed_at or failure.at
            entry.available_at = self.now() + max(0.0, delay)
        self.broker.notify()

    async def dead_letter(self, delivery: Delivery, failure: Failure) -> None:
        found = self._settle(delivery)
        if found:
            queue, entry = found
            queue.entries.remove(entry)
            msg = entry.message
            queue.dead.append(
                RawDeadLetter(
                    entry_id=str(uuid.uuid4()),
                    group=queue.spec.name,
                    id=msg.id,
                    type=msg.type,
                    body=msg.body,
                    content_type=msg.content_type,
                    headers=dict(msg.headers),
                    key=msg.key,
                    reason=failure.reason,
                    exception_type=failure.exception_type,
                    message=failure.message,
                    traceback=failure.traceback,
                    attempts=entry.attempt,
                    first_failed_at=entry.first_failed_at or failure.at,
                    last_failed_at=failure.at,
                )
            )
        self.broker.notify()

    def _queue(self, group: str) -> _Queue:
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
        out = []
        for name, queue in sorted(self.broker.queues.items()):
            ready = [e for e in queue.entries if not e.leased and e.available_at <= now]
            queue.published = [t for t in queue.published if t > now - _RATE_WINDOW]
            queue.acked = [t for t in queue.acked if t > now - _RATE_WINDOW]
            out.append(
                GroupStats(
                    group=name,
                    ready=len(ready),
                    in_flight=sum(1 for e in queue.entries if e.leased),
                    scheduled=sum(
                        1 for e in queue.entries if not e.leased and e.available_at > now
                    ),
                    dead=len(queue.dead),
                    consumers=queue.consumers,
                    oldest_age=max((now - e.enqueued_at for e in ready), default=0.0),
                    publish_rate=len(queue.published) / _RATE_WINDOW,
                    ack_rate=len(queue.acked) / _RATE_WINDOW,
                    dead_recent=sum(1 for d in queue.dead if d.last_failed_at > now - _DEAD_WINDOW),
                )
            )
        return out

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

    def dedupe_store(self) -> DedupeStore:
        return self._dedupe

    async def ping(self) -> None:
        return None
