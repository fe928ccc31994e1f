"""Batches through publish middleware: several publish stacks running side by side that
meet at one transport call (one confirm), or one staging in the outbox.

Each message of a `publish_many` (or of what a handler's context held) goes down its own
publish stack, in a task of its own. The innermost step of each stack takes its message's
place in the `Batch` (`place_of`); once every stack has arrived or finished without
publishing (a middleware may drop a message), the messages leave together.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence
from typing import Protocol

from .._exceptions import Unroutable
from ..transports import OutgoingMessage
from .middleware import Publication, PublishStack

__all__ = ["Batch", "BatchPublisher", "ids_or_raise", "leave_batch", "place_of", "reset"]


class BatchPublisher(Protocol):
    """What a batch needs of the publisher."""

    def outgoing(self, pub: Publication) -> OutgoingMessage:
        """Encode `pub` (raises `MessageTooLarge`)."""

    async def deliver(self, messages: Sequence[OutgoingMessage]) -> list[bool]:
        """Publish (or stage) `messages` in one call; per message, whether it was routed."""

    def check_routed(self, messages: Sequence[OutgoingMessage], routed: Sequence[bool]) -> None:
        """Raise `Unroutable` for a message no group took (unless that is ignored)."""

    def refused(self, routed: Sequence[bool]) -> bool:
        """True when a call with these routing flags stored none of its messages."""


def ids_or_raise(results: Sequence[str | BaseException]) -> list[str]:
    """The ids of a batch published through hooks; an error of one message raised, with the
    unroutable ones of the whole batch gathered in one `Unroutable`."""
    errors = [r for r in results if isinstance(r, BaseException)]
    if not errors:
        return [r for r in results if isinstance(r, str)]
    lost = [e for e in errors if isinstance(e, Unroutable)]
    other = next((e for e in errors if not isinstance(e, Unroutable)), None)
    if other is not None:
        raise other
    named = [e for e in lost if e.unroutable_ids] or lost
    raise Unroutable(
        str(named[0]),
        sent_ids=[r for r in results if isinstance(r, str)],
        unroutable_ids=[i for e in lost for i in e.unroutable_ids],
    )


class _Place:
    """One message's place in a batch, taken by the first ``call_next`` to reach the
    innermost step (a second call from one middleware publishes on its own)."""

    __slots__ = ("batch", "taken")

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.taken = False

    def take(self) -> bool:
        if self.taken or self.batch.flushed:
            return False
        self.taken = True
        return True


# The place of the message whose stack runs in this task (each `Batch.run` runs in a task of
# its own, with its own copy of the context).
_PLACE: contextvars.ContextVar[_Place | None] = contextvars.ContextVar(
    "tidings_publish_place", default=None
)


def place_of() -> Batch | None:
    """The batch the stack running in this task publishes into, if its place is free."""
    place = _PLACE.get()
    if place is not None and place.take():
        return place.batch
    return None


def leave_batch() -> contextvars.Token[_Place | None]:
    """Publish outside any batch from here on (a publish from inside a batched message's
    middleware is not part of its batch); `reset` the token after."""
    return _PLACE.set(None)


def reset(token: contextvars.Token[_Place | None]) -> None:
    _PLACE.reset(token)


class Batch:
    """The meeting point of several publish stacks running side by side.

    Each stack's innermost step adds its message and waits. Once every stack has either
    arrived or finished without publishing, the messages go out in one call and each step
    gets its own result.
    """

    def __init__(self, publisher: BatchPublisher, expected: int) -> None:
        self.publisher = publisher
        self.pending = expected
        self.messages: list[OutgoingMessage] = []
        self.results: list[asyncio.Future[bool]] = []
        self.flushed = False
        self.failed: BaseException | None = None  # a message that could not be encoded
        self.refused = False  # an atomic transport stored none of it (one was unroutable)
        self._sender: asyncio.Task[None] | None = None

    async def run(self, stack: PublishStack, pub: Publication) -> str:
        """Publish `pub` through `stack`, whose innermost step joins this batch."""
        place = _Place(self)
        _PLACE.set(place)
        try:
            return await stack(pub)
        finally:
            if not place.taken:
                self._arrived()

    async def join(self, pub: Publication) -> str:
        try:
            message = self.publisher.outgoing(pub)
        except BaseException as exc:
            self.failed = self.failed or exc  # the whole batch is refused, as without hooks
            self._arrived()
            raise
        result = asyncio.get_running_loop().create_future()
        self.messages.append(message)
        self.results.append(result)
        self._arrived()
        routed = await result
        if routed and self.refused:
            # Stored with none of the batch: one message of it was unroutable.
            raise Unroutable("the batch was refused whole", sent_ids=(), unroutable_ids=())
        self.publisher.check_routed([message], [routed])
        return pub.envelope.id

    def _arrived(self) -> None:
        self.pending -= 1
        if self.pending == 0 and not self.flushed:
            self.flushed = True
            if self.messages:
                self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        if self.failed is not None:
            for result in self.results:
                result.set_exception(self.failed)
            return
        try:
            routed = await self.publisher.deliver(self.messages)
        except BaseException as exc:
            for result in self.results:
                if not result.done():
                    result.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        self.refused = self.publisher.refused(routed)
        for result, ok in zip(self.results, routed, strict=True):
            if not result.done():
                result.set_result(ok)
