"""The transport contract: the few operations every broker binding provides.

A transport moves opaque messages (bytes plus headers) between a bus and the broker. It knows
nothing of events, pydantic or handlers; the pipeline above it decodes, validates, runs the
handler and then *settles* each delivery with exactly one of `ack`, `retry_later` or
`dead_letter`. Each transport implements delay and dead-lettering with the broker's own means,
so no worker ever sleeps on a failed message, and keeps the attempt count across restarts.

Capabilities a transport may lack are named in `Transport.capabilities`; the methods for them
raise `NotSupported` (never a silent no-op).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Self

from .._clock import Clock, SystemClock
from .._exceptions import NotSupported
from .._stats import GroupStats

__all__ = [
    "CAP_DEDUPE",
    "CAP_REPLAY_LOG",
    "Consumer",
    "DedupeStore",
    "Deliver",
    "Delivery",
    "Failure",
    "GroupSpec",
    "OutgoingMessage",
    "RawDeadLetter",
    "Transport",
    "TransportOptions",
]

CAP_REPLAY_LOG = "replay_log"
"""The transport keeps a retained log of published events and can replay a group from it."""
CAP_DEDUPE = "dedupe"
"""The transport has its own dedupe store (no `dedupe=` URL needed for `idempotent=True`)."""


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """Settings a bus hands to its transport.

    Attributes:
        name: the bus namespace (RabbitMQ exchange name, queue prefix).
        lease: seconds a claimed delivery stays invisible to other consumers; renewed while
            the handler runs (embedded broker).
        retention: seconds published events are kept in the retained log.
        max_message_size: largest encoded message accepted, in bytes.
        dedupe_url: URL of an external dedupe store, if any.
        dedupe_ttl: seconds a dedupe marker lives.
        clock: time source (a `ManualClock` in tests).
        extra: transport-specific keyword options given to `Bus(...)`.
    """

    name: str = "tidings"
    lease: float = 30.0
    retention: float = 7 * 24 * 3600.0
    max_message_size: int = 1024 * 1024
    dedupe_url: str | None = None
    dedupe_ttl: float = 24 * 3600.0
    clock: Clock = field(default_factory=SystemClock)
    extra: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """A durable, named subscription: a queue bound with topic patterns.

    Attributes:
        name: the group's name.
        patterns: AMQP topic patterns (`*` one word, `#` zero or more words).
        concurrency: most deliveries of the group one consumer holds at a time.
        ordered: deliveries of one key are handed out one at a time, in publish order; a
            delivery waiting for its retry holds back the later ones of its key only.
    """

    name: str
    patterns: tuple[str, ...]
    concurrency: int = 16
    ordered: bool = False


@dataclass(slots=True)
class OutgoingMessage:
    """One encoded message to publish.

    Attributes:
        id: the event id (AMQP `message_id`).
        type: the routing key (the event type).
        body: encoded bytes.
        content_type: MIME type of `body`.
        headers: transport headers (binary-mode `ce-*` attributes, our retry bookkeeping).
        key: ordering/partition key.
        delay: seconds before the message becomes available to consumers.
        group: deliver to this group only, bypassing routing (commands, DLQ replay).
        published_at: epoch seconds when it was published.
        replayed: mark the delivery as a replay (skips dedupe).
    """

    id: str
    type: str
    body: bytes
    content_type: str = "application/cloudevents+json"
    headers: Mapping[str, str] = field(default_factory=dict)
    key: str | None = None
    delay: float = 0.0
    group: str | None = None
    published_at: float = 0.0
    replayed: bool = False


@dataclass(slots=True)
class Delivery:
    """A message handed to a consumer of one group, until it is settled.

    Attributes:
        group: the group it was delivered to.
        id: the message id the transport knows (None for a foreign message without one).
        type: the routing key it was published with.
        body: the encoded bytes.
        content_type: MIME type, when the broker carried one.
        headers: transport headers as published.
        key: ordering key, if any.
        attempt: 1 on first delivery; survives restarts and lease expiry.
        replayed: delivered by `replay` or a DLQ replay marked as such.
        first_failed_at: epoch seconds of the first failed attempt, if any.
        handle: the transport's own reference (row id, delivery tag).
    """

    group: str
    id: str | None
    type: str
    body: bytes
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    key: str | None = None
    attempt: int = 1
    replayed: bool = False
    first_failed_at: float | None = None
    handle: object = None


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a delivery failed, as the pipeline records it.

    Attributes:
        reason: one line a person reads (e.g. ``"ValueError: card declined"``).
        exception_type: qualified name of the exception class, if an exception caused it.
        message: the exception message (or the reason when there was no exception).
        traceback: a trimmed traceback, possibly empty.
        at: epoch seconds of the failure.
    """

    reason: str
    exception_type: str | None
    message: str
    traceback: str
    at: float


@dataclass(frozen=True, slots=True)
class RawDeadLetter:
    """A dead-letter entry as stored by the transport (body still encoded)."""

    entry_id: str
    group: str
    id: str | None
    type: str
    body: bytes
    content_type: str | None
    headers: Mapping[str, str]
    key: str | None
    reason: str
    exception_type: str | None
    message: str
    traceback: str
    attempts: int
    first_failed_at: float
    last_failed_at: float


Deliver = Callable[[Delivery], Coroutine[Any, Any, None]]
"""The callback a consumer runs for each delivery; it settles the delivery itself."""


class Consumer(abc.ABC):
    """A running consumer of one group."""

    @abc.abstractmethod
    async def stop(self, timeout: float) -> None:
        """Stop taking new deliveries, wait up to `timeout` seconds for running callbacks,
        then cancel the rest (their deliveries return to the group, attempt counted)."""


class DedupeStore(abc.ABC):
    """Remembers which event ids a group has processed, for `idempotent=True` groups."""

    @abc.abstractmethod
    async def seen(self, group: str, event_id: str) -> bool:
        """True when `event_id` was marked done for `group` and the marker has not expired."""

    @abc.abstractmethod
    async def mark(self, group: str, event_id: str, ttl: float) -> None:
        """Mark `event_id` done for `group` for `ttl` seconds."""

    async def close(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release connections; the default has none."""


class Transport(abc.ABC):
    """One broker binding. Open and close it with ``async with`` or `open`/`close`."""

    scheme: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, url: str, options: TransportOptions) -> None:
        self.url = url
        self.options = options

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect; raise `BrokerUnavailable` or `ConfigError` with a clear message."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every resource; safe to call twice."""

    @abc.abstractmethod
    async def declare(self, groups: Sequence[GroupSpec]) -> None:
        """Create the groups (idempotently) and store their bindings, so later publishes from
        any process fan out to them. Conflicting settings of an existing group are updated."""

    @abc.abstractmethod
    async def publish(self, messages: Sequence[OutgoingMessage]) -> list[bool]:
        """Publish and return once the broker has made every message durable.

        Returns, per message, whether it reached at least one group. Raises
        `BrokerUnavailable` when the broker cannot confirm.
        """

    @abc.abstractmethod
    async def consume(self, group: GroupSpec, deliver: Deliver) -> Consumer:
        """Start handing deliveries of `group` to `deliver`, at most `group.concurrency`
        unsettled at a time, each callback in its own task. Ordered groups get at most one
        delivery per key at a time."""

    @abc.abstractmethod
    async def ack(self, delivery: Delivery) -> None:
        """Settle: done, remove it. Returns once the broker has it (committed, or sent)."""

    def ack_soon(self, delivery: Delivery) -> bool:
        """Settle like `ack` without waiting: queue the ack to go with others (the broker
        gets it within moments; should the process die first, the delivery comes back, at
        least once). Return False when the transport does not queue acks; the pipeline then
        awaits `ack`. A transport that queues must send what is queued before it closes."""
        return False

    @abc.abstractmethod
    async def retry_later(self, delivery: Delivery, delay: float, failure: Failure) -> None:
        """Settle: make it available again after `delay` seconds with `attempt + 1`, keeping
        `first_failed_at`. For ordered groups it keeps its place at the head of its key."""

    @abc.abstractmethod
    async def dead_letter(self, delivery: Delivery, failure: Failure) -> None:
        """Settle: move it to the group's dead-letter queue with the failure recorded."""

    @abc.abstractmethod
    async def dlq_list(self, group: str, limit: int, offset: int) -> list[RawDeadLetter]:
        """Dead letters of `group`, oldest first."""

    @abc.abstractmethod
    async def dlq_get(self, group: str, entry_id: str) -> RawDeadLetter:
        """One dead letter; raise `DeadLetterNotFound` when missing."""

    @abc.abstractmethod
    async def dlq_replay(
        self,
        group: str,
        entry_ids: Sequence[str] | None,
        rebuild: Callable[[RawDeadLetter], OutgoingMessage],
    ) -> int:
        """Send entries (all when `entry_ids` is None) back to `group` only, as `rebuild`
        makes them, and remove each entry once the broker confirmed its new message.
        Returns how many moved."""

    @abc.abstractmethod
    async def dlq_purge(self, group: str, entry_ids: Sequence[str] | None) -> int:
        """Delete entries (all when `entry_ids` is None); return how many."""

    @abc.abstractmethod
    async def stats(self) -> list[GroupStats]:
        """Counters of every declared group (alerts left empty; the bus fills them)."""

    async def replay(self, group: str, since: float) -> int:
        """Re-deliver to `group` the retained events published at or after `since` (epoch
        seconds) that match its patterns, marked replayed. Returns how many."""
        raise NotSupported(f"the {self.scheme}:// transport keeps no log to replay from")

    def dedupe_store(self) -> DedupeStore | None:
        """The transport's own dedupe store, or None when it has none."""
        return None

    async def ping(self) -> None:
        """Raise `BrokerUnavailable` unless the broker answers."""
        await self.stats()
