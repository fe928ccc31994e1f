"""The per-delivery `Context` a handler receives."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .._codec.envelope import Envelope
from .._exceptions import StateError
from .failures import visible_headers
from .messages import Message

if TYPE_CHECKING:
    from ..outbox._inbox import HandlerSession

__all__ = ["Context", "Pending"]

_DERIVED_NS = uuid.UUID("5b7c7f52-2a2f-4d0e-9a51-0c6a3f0e7d11")


@dataclass(frozen=True, slots=True)
class Pending:
    """A message a handler published through its context, held until the handler succeeds."""

    message: Message
    id: str
    key: str | None
    to: str | None
    headers: Mapping[str, str] | None
    delay: float | None


class Context:
    """What a handler knows about the delivery it is handling, and how it publishes.

    A handler that declares a second parameter receives one per delivery:

    ```python
    @bus.subscribe("order.placed", group="inventory")
    async def reserve_stock(order: OrderPlaced, ctx: Context) -> None:
        if ctx.attempt > 1:
            logger.info("retrying %s (attempt %d)", ctx.event_id, ctx.attempt)
        await ctx.publish(StockReserved(order_id=order.order_id), key=ctx.key)
    ```

    Messages published through the context are held until the handler returns, then sent
    before the delivery is acknowledged; a handler that fails sends nothing. Their ids are
    derived from the incoming event id, the group and their position, so a handler run again
    after a crash between the send and the ack publishes the same ids, and a consumer with
    ``idempotent=True`` drops the copies. They carry the incoming event's correlation id
    (or its id) and its id as causation id.

    Attributes:
        event_id: the incoming event's id (``envelope.id``).
        envelope: the CloudEvents attributes of the incoming event (a read-only `Envelope`).
        group: the group handling it.
        attempt: 1 on first delivery, 2 on the first retry, and so on; it counts across
            restarts and lease expiry, and starts again at 1 after a dead-letter replay.
        key: the ordering key it was published with, if any.
        headers: transport headers as received (read-only), without tidings' bookkeeping.
        replayed: True when delivered by `Bus.replay` from the retained log; dedupe is
            bypassed for it.
        session: the SQLAlchemy `AsyncSession` of a transactional handler (see `session`).
    """

    __slots__ = (
        "event_id",
        "envelope",
        "group",
        "attempt",
        "key",
        "headers",
        "replayed",
        "_out",
        "_work",
        "_session",
    )

    def __init__(
        self,
        *,
        envelope: Envelope,
        group: str,
        attempt: int,
        key: str | None,
        headers: Mapping[str, str],
        replayed: bool,
    ) -> None:
        self.event_id = envelope.id
        self.envelope = envelope
        self.group = group
        self.attempt = attempt
        self.key = key
        headers = visible_headers(headers)
        self.headers: Mapping[str, str] = MappingProxyType(
            headers if isinstance(headers, dict) else dict(headers)
        )
        self.replayed = replayed
        self._out: list[Pending] = []
        # What the pipeline's stages know of this delivery (the raw delivery, the decoded
        # data, the chosen handler); None for a context made outside a pipeline.
        self._work: Any = None
        # The inbox transaction of a transactional handler, while it runs.
        self._session: HandlerSession | None = None

    def _derived_id(self) -> str:
        # Same incoming event, group and position -> same id, so a re-run after a crash
        # between send and ack re-sends ids a deduping consumer drops.
        return str(uuid.uuid5(_DERIVED_NS, f"{self.group}\x00{self.event_id}\x00{len(self._out)}"))

    async def publish(
        self,
        event: Message,
        *,
        key: str | None = None,
        id: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float | None = None,
    ) -> str:
        """Publish `event` once the handler returns successfully; return its id now.

        Args:
            event: an `Event` (or `Command`) instance, published to every group subscribed
                to its type.
            key: the ordering key (see `Bus.publish`).
            id: the event id; by default it is derived from the incoming event id, the
                group and this message's position, so a re-run publishes the same id.
            headers: extra transport headers.
            delay: seconds before the event becomes available to consumers.

        Returns:
            The id the event will be published with.

        A publish that fails once the handler has returned (an unroutable type, a broker
        that is down) fails the attempt, which is retried under the handler's `Retry`.
        """
        event_id = id or self._derived_id()
        self._out.append(Pending(event, event_id, key, None, headers, delay))
        return event_id

    async def send(
        self,
        command: Message,
        *,
        to: str,
        key: str | None = None,
        id: str | None = None,
        delay: float | None = None,
    ) -> str:
        """Send `command` to group `to` once the handler returns successfully.

        Args:
            command: a `Command` (or `Event`) instance.
            to: the group that handles it.
            key: the ordering key (see `Bus.publish`).
            id: the message id; derived from the incoming event by default (see `publish`).
            delay: seconds before it becomes available to the group.

        Returns:
            The id the command will be sent with.
        """
        event_id = id or self._derived_id()
        self._out.append(Pending(command, event_id, key, to, None, delay))
        return event_id

    @property
    def session(self) -> HandlerSession:
        """The `AsyncSession` of a transactional handler (``subscribe(...,
        transactional=True)``), in the transaction tidings opened for this delivery.

        What the handler writes with it, the inbox row that marks the event handled, and
        what it publishes through this context (staged in the outbox) commit together once
        the handler returns, or roll back together if it fails. Do not commit it yourself.

        Raises:
            StateError: the handler is not transactional.
        """
        if self._session is None:
            raise StateError(
                f"ctx.session is for transactional handlers: group {self.group!r} handles "
                f"{self.envelope.type!r} without one; subscribe(..., transactional=True) "
                "on a Bus(database=...)"
            )
        return self._session

    @property
    def pending(self) -> tuple[Pending, ...]:
        """What the handler published through this context so far, held until it returns."""
        return tuple(self._out)

    def __repr__(self) -> str:
        return (
            f"Context(event_id={self.event_id!r}, group={self.group!r}, "
            f"attempt={self.attempt}, key={self.key!r}, replayed={self.replayed})"
        )
