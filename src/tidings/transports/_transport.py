"""The transport contract: the few operations every broker binding provides."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, ClassVar, Literal, Self

from .._exceptions import NotSupported
from ._failure import Failure, RawDeadLetter
from ._group import GroupSpec
from ._message import Delivery, OutgoingMessage
from ._options import TransportOptions
from ._stats import GroupStats

__all__ = [
    "CAP_ATOMIC_BATCH",
    "CAP_DEDUPE",
    "CAP_REPLAY_LOG",
    "Claimed",
    "Consumer",
    "DedupeStore",
    "Deliver",
    "OnReply",
    "Replies",
    "Transport",
]


CAP_REPLAY_LOG = "replay_log"
"""The transport keeps a retained log of published events and can replay a group from it."""


CAP_DEDUPE = "dedupe"
"""The transport has its own dedupe store (no `dedupe=` URL needed for `idempotent=True`)."""


CAP_ATOMIC_BATCH = "atomic_batch"
"""The transport refuses a publish call whole: with ``options.on_unroutable == "error"``, a
call holding an unroutable message stores none of its messages (the flags `publish` returns
still say which were routable). Without it, the routable ones of the call go out."""


Deliver = Callable[[Delivery], Coroutine[Any, Any, None]]
"""The callback a consumer runs for each delivery; it settles the delivery itself."""


OnReply = Callable[[Delivery], None]
"""Called (in the event loop, without awaiting) with each reply a `Replies` inbox receives.
A reply needs no settling: the inbox has taken it off the broker already."""


class Replies(abc.ABC):
    """One bus instance's reply inbox, as `Transport.open_replies` returns it: requests
    published with ``reply_to=address`` get their answers here. Close it when the bus
    closes; an inbox whose owner died without closing is removed by the broker (RabbitMQ:
    with the channel) or expires (the embedded broker: after one lease)."""

    address: str
    """What a request carries as its ``reply_to``, so the handler's answer finds the inbox."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop receiving and remove the inbox with any reply still in it; safe twice."""


class Consumer(abc.ABC):
    """A running consumer of one group, as `Transport.consume` returns it; `stop` it."""

    @abc.abstractmethod
    async def stop(self, timeout: float) -> None:
        """Stop taking new deliveries, wait up to `timeout` seconds for running callbacks,
        then cancel the rest (their deliveries return to the group, attempt counted)."""


Claimed = Literal["claimed", "done", "busy"]
"""What `DedupeStore.claim` found: the id is now ours to process (``"claimed"``), it was
processed already (``"done"``), or another delivery holds a live claim on it (``"busy"``)."""


class DedupeStore(abc.ABC):
    """Remembers which event ids a group has processed, for `idempotent=True` groups.

    The pipeline uses claims, not check-then-mark: `claim` before the handler runs,
    `renew` while it runs, then `complete` once it succeeded or `release` when it failed, so
    two copies of one event in flight at once run the handler once. `seen` and `mark` are
    the minimum a store implements; the default claim methods are built on them (without
    the race protection).
    Any method raises `BrokerUnavailable` when the store cannot be reached.
    """

    @abc.abstractmethod
    async def seen(self, group: str, event_id: str) -> bool:
        """True when `event_id` was marked done for `group` and the marker has not expired."""

    @abc.abstractmethod
    async def mark(self, group: str, event_id: str, ttl: float) -> None:
        """Mark `event_id` done for `group` for `ttl` seconds."""

    async def claim(self, group: str, event_id: str, lease: float) -> Claimed:
        """Claim `event_id` for `group` for `lease` seconds, atomically: ``"claimed"`` when
        no live claim or marker exists (the caller processes it), ``"done"`` when it was
        marked done, ``"busy"`` when another claim is live. An expired claim is free."""
        return "done" if await self.seen(group, event_id) else "claimed"

    async def complete(self, group: str, event_id: str, ttl: float) -> None:
        """Turn the claim into a "done" marker that lives `ttl` seconds."""
        await self.mark(group, event_id, ttl)

    async def release(self, group: str, event_id: str) -> None:  # noqa: B027 - optional
        """Drop the claim (the handler failed) so the next copy may run; the default store
        keeps no claims."""

    async def renew(self, group: str, event_id: str, lease: float) -> None:  # noqa: B027
        """Extend this store's live claim on `event_id` to `lease` seconds from now (the
        pipeline renews the claims of running handlers, so a claim whose holder died ends
        within one lease). Nothing happens when the claim is gone or is a "done" marker;
        the default store keeps no claims."""

    async def close(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release connections; the default has none."""


class Transport(abc.ABC):
    """One broker binding. Open and close it with ``async with`` or `open`/`close`.

    A bus drives it: `declare` its groups, `publish` with confirms, `consume` a group, and
    settle each delivery once (`ack`, `retry_later` or `dead_letter`). Subclass it and
    implement every abstract method; the optional ones (`replay`, `dedupe_store`,
    `ack_soon`, `ping`) have defaults, so a transport keeps working when the interface
    grows. A transport never imports tidings' private modules: this package exports all it
    needs. See the guide "Writing a transport".

    Args:
        url: the URL it serves (``scheme://...``).
        options: the common settings from the bus (namespace, lease, clock, ...).

    Attributes:
        scheme: the URL scheme it serves (``"sqlite"``), used in messages.
        capabilities: the optional capabilities it has: `CAP_REPLAY_LOG`, `CAP_DEDUPE`,
            `CAP_ATOMIC_BATCH`.
        url: the URL it was built for.
        options: the common settings (`TransportOptions`).
    """

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
        `BrokerUnavailable` when the broker cannot confirm, `QueueFull` when a target group
        is at its ``max_ready`` bound. An unroutable message is never kept in a retained
        log; see `CAP_ATOMIC_BATCH` for batches that hold one.
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

    async def postpone(self, delivery: Delivery, delay: float) -> None:
        """Settle: make it available again after `delay` seconds *without* counting an
        attempt (a duplicate waiting for a live claim, a dedupe store that is down). For
        ordered groups it keeps its place. The default calls `retry_later` as if this were
        the attempt before, which is right for transports whose `retry_later` stores
        ``delivery.attempt + 1``; override it otherwise."""
        before = dataclasses.replace(delivery, attempt=max(0, delivery.attempt - 1))
        failure = Failure("postponed", None, "postponed", "", self.options.clock.time())
        await self.retry_later(before, delay, failure)

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

    async def open_replies(self, on_reply: OnReply) -> Replies:
        """Open a reply inbox for this transport's owner (`bus.request`). A message published
        with ``reply_to=inbox.address`` reaches its group as usual, with the delivery's
        ``reply_to`` set to an address `send_reply` can answer (RabbitMQ's direct reply-to
        rewrites it on the way). Transports without request/reply keep this default."""
        raise NotSupported(f"the {self.scheme}:// transport has no request/reply")

    async def send_reply(self, address: str, message: OutgoingMessage) -> None:
        """Send `message` to the reply inbox at `address` (a delivery's ``reply_to``). A
        reply to an inbox that is gone (its owner closed or died) is dropped without an
        error: nobody waits for it any more. Raises `BrokerUnavailable` when the broker
        cannot be reached."""
        raise NotSupported(f"the {self.scheme}:// transport has no request/reply")

    def dedupe_store(self) -> DedupeStore | None:
        """The transport's own dedupe store, or None when it has none."""
        return None

    async def ping(self) -> None:
        """Raise `BrokerUnavailable` unless the broker answers."""
        await self.stats()
