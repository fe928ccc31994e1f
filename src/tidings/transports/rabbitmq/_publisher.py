"""Publishing with confirms: bursts batched per event-loop turn, unconfirmed messages retried
across a reconnect.

`BatchPublisher` only queues a publish; a flush task, started by the first publish of a
burst, runs once the tasks ready in the same event-loop turn have queued theirs and hands the
whole batch to `send_publishes` (one socket write where aiormq allows it: see `_aiormq`). A
long burst does not wait for its end: every `EAGER` publishes are written at once by the
publishing task when `write_now` can, so the broker works while the burst goes on. Publishes
queued while a batch is being written go in the next one, so a busy publisher
batches more, an idle one adds no delay. `ConfirmedPublisher` sends everything, then awaits
every confirm, and sends again what a lost connection left unconfirmed until its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiormq
from pamqp import commands as spec

from ..._exceptions import BrokerUnavailable
from .._urls import mask_url
from ._aiormq import PendingPublish, send_publishes, write_now
from ._errors import translate

__all__ = ["BatchPublisher", "ConfirmedPublisher", "Outbound", "Refused"]

Outbound = tuple[str, str, bytes, spec.Basic.Properties]
"""One message to publish: (exchange, routing key, body, properties)."""

EAGER = 32
"""Publishes queued in one event-loop turn that are written at once, from the publishing
task, when they can be (`write_now`): the broker starts on them while the rest of the burst
is being made, instead of after it."""

MAX_BATCH_BYTES = 1 << 20
"""A flush writes at most about this many body bytes at once (a large batch is cut into
several writes, so a burst of big messages is not copied into one huge buffer)."""

_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    OSError,
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.ConnectionClosed,
    RuntimeError,
    TimeoutError,
)
"""Errors after which a publish is tried again once the connection is back."""

RENEW_EVERY = 1.0
"""Seconds between two renewals of the confirm channel after unexplained nacks."""


class Refused(BrokerUnavailable):
    """The broker refused some messages with a negative confirm (a quorum queue at its
    ``x-max-length`` with ``x-overflow=reject-publish``, say); the others were confirmed.

    Attributes:
        indices: the positions of the refused messages in the call.
        routed: per message, as `ConfirmedPublisher.send` would have returned it (refused
            ones False).
    """

    def __init__(self, message: str, indices: list[int], routed: list[bool]) -> None:
        super().__init__(message)
        self.indices = indices
        self.routed = routed


def _chunks(queued: list[PendingPublish]) -> list[list[PendingPublish]]:
    """`queued` cut into batches of about `MAX_BATCH_BYTES` of bodies each."""
    batches: list[list[PendingPublish]] = [[]]
    size = 0
    for item in queued:
        if size >= MAX_BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(item)
        size += len(item.body)
    return batches


class BatchPublisher:
    """Queues publishes and writes each burst in one go; see the module docstring.

    Args:
        underlay: returns the confirm channel's current aiormq channel (raising while it
            is down).
    """

    def __init__(self, underlay: Callable[[], Awaitable[Any]]) -> None:
        self._underlay = underlay
        self._queue: list[PendingPublish] = []
        self._flusher: asyncio.Task[None] | None = None
        self._channel: Any = None  # the driver channel written to last

    def submit(
        self, exchange: str, routing_key: str, body: bytes, properties: spec.Basic.Properties
    ) -> asyncio.Future[Any]:
        """Queue one mandatory publish. The future resolves with the broker's ``Basic.Ack``;
        it fails with aiormq's ``PublishError`` (returned: unroutable), ``DeliveryError``
        (nacked) or the error that closed the channel."""
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[Any] = loop.create_future()
        queue = self._queue
        queue.append(PendingPublish(exchange, routing_key, body, properties, outcome))
        channel = self._channel
        if len(queue) >= EAGER and channel is not None and write_now(channel, queue):
            self._queue = []
        elif self._flusher is None:
            self._flusher = loop.create_task(self._flush())
        return outcome

    async def underlay(self) -> Any:
        """The confirm channel's current driver channel (raising while it is down)."""
        return await self._underlay()

    async def close(self) -> None:
        """Stop flushing and fail whatever is still queued."""
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.cancel()
            await asyncio.wait([flusher])  # never raises: the flusher's own end is expected
        self._fail(self._queue, aiormq.exceptions.ChannelInvalidStateError("publisher closed"))
        self._queue = []

    async def _flush(self) -> None:
        try:
            while self._queue:
                queued, self._queue = self._queue, []
                for batch in _chunks(queued):
                    try:
                        await self._write(batch)
                    except BaseException as exc:
                        self._fail(batch, exc)
                        if isinstance(exc, asyncio.CancelledError):
                            self._fail(queued, exc)
                            raise
        finally:
            if self._flusher is asyncio.current_task():
                self._flusher = None
            if self._queue and self._flusher is None:
                # Queued while the last write failed or was cancelled: give them their turn.
                with contextlib.suppress(RuntimeError):
                    self._flusher = asyncio.get_running_loop().create_task(self._flush())

    @staticmethod
    def _fail(batch: list[PendingPublish], exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            exc = aiormq.exceptions.ChannelInvalidStateError("the publisher was closed")
        for item in batch:
            if not item.outcome.done():
                item.outcome.set_exception(exc)

    async def _write(self, batch: list[PendingPublish]) -> None:
        self._channel = channel = await self._underlay()
        await send_publishes(channel, batch)


class ConfirmedPublisher:
    """Sends messages and waits for every confirm, retrying across reconnects.

    Args:
        underlay: as for `BatchPublisher`.
        url: the broker URL, for error messages (its password is masked).
        timeout: seconds a publish may take, reconnects included, before
            `BrokerUnavailable`.
        reconnect: waits (until the deadline it is given, in `time.monotonic` seconds) for
            the connection to come back and reopens the confirm channel.
    """

    def __init__(
        self,
        underlay: Callable[[], Awaitable[Any]],
        *,
        url: str,
        timeout: float,
        reconnect: Callable[[float], Awaitable[None]],
    ) -> None:
        self._batcher = BatchPublisher(underlay)
        self._url = url
        self._timeout = timeout
        self._reconnect = reconnect
        self._closed = False
        self._renewed_at = float("-inf")
        self._deadlines = _Deadlines()

    async def close(self) -> None:
        """Refuse new sends and fail the queued ones."""
        self._closed = True
        await self._batcher.close()

    async def send(self, items: Sequence[Outbound]) -> list[bool]:
        """Send all, then await all confirms; retry unconfirmed ones across a reconnect.
        Per item: True confirmed, False returned (unroutable).

        Raises:
            Refused: the broker nacked some (once every other one is settled).
            BrokerUnavailable: no confirm within the deadline.
        """
        results: list[bool | None] = [None] * len(items)
        refused: list[int] = []
        deadline = time.monotonic() + self._timeout
        while True:
            pending = [i for i, r in enumerate(results) if r is None]
            outcomes = await self._send_pending(items, pending, deadline)
            failure: BaseException | None = None
            for i, outcome in zip(pending, outcomes, strict=True):
                if isinstance(outcome, bool):
                    results[i] = outcome
                elif isinstance(outcome, aiormq.exceptions.DeliveryError):
                    results[i] = False
                    refused.append(i)
                elif isinstance(outcome, aiormq.exceptions.ChannelPreconditionFailed):
                    raise translate(outcome, self._url, "publishing") from outcome
                elif isinstance(outcome, BaseException):
                    if not isinstance(outcome, _CONNECTION_ERRORS):
                        raise translate(outcome, self._url, "publishing") from outcome
                    failure = outcome
            if failure is None and refused:
                await self._renew()
                raise Refused(
                    f"RabbitMQ at {mask_url(self._url)} did not accept {len(refused)} of "
                    f"{len(items)} message(s) (negative confirm)",
                    sorted(refused),
                    [bool(r) for r in results],
                )
            if failure is None:
                return [bool(r) for r in results]
            if time.monotonic() > deadline:
                raise BrokerUnavailable(
                    f"cannot publish to RabbitMQ at {mask_url(self._url)}: no confirm within "
                    f"{self._timeout:g}s ({type(failure).__name__}: {failure})"
                ) from failure
            await self._reconnect(deadline)

    async def _renew(self) -> None:
        """After a nack: a fresh confirm channel for what follows (at most every
        `RENEW_EVERY` seconds); the caller decides whether to send the refused ones again.

        A quorum queue whose leader changed can nack every publish of a channel that first
        published to it while its old leader was gone (RabbitMQ 3.10: the channel's queue
        client stays in ``reject_publish``), so after a node of a cluster fails the channel
        would refuse for ever.
        """
        if time.monotonic() - self._renewed_at < RENEW_EVERY:
            return
        self._renewed_at = time.monotonic()
        with contextlib.suppress(Exception):
            # Closing the driver's channel: the reconnect step reopens the confirm channel.
            await (await self._batcher.underlay()).close()

    async def _send_pending(
        self, items: Sequence[Outbound], pending: list[int], deadline: float
    ) -> list[bool | BaseException]:
        """Outcomes of sending `items[i]` for each pending `i`: True confirmed, False returned
        (unroutable), or the error. All are queued before any is awaited, so they leave
        together (see `BatchPublisher`)."""
        if self._closed:
            raise BrokerUnavailable(f"the transport for {mask_url(self._url)} is not open")
        futures = [self._batcher.submit(*items[i]) for i in pending]
        # Bounded by the deadline: a confirm lost with its connection may never come. Each
        # outcome is awaited as it is (asyncio.wait would add a waiter future and callbacks
        # per call, a third of the cost of a confirm), and one timer watches every send's
        # deadline (`_Deadlines`), not one a send.
        expiry = _Expiry(futures, deadline)
        self._deadlines.add(expiry)
        try:
            for future in futures:
                if future.done():
                    continue
                try:
                    await future
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise  # the caller's cancellation, not the deadline
                except Exception:  # read below
                    pass
        except BaseException:
            for future in futures:
                future.cancel()  # abandoned: unsent ones are not sent, late confirms dropped
            raise
        finally:
            self._deadlines.discard(expiry)
        return [self._outcome(future, expiry.expired) for future in futures]

    @staticmethod
    def _outcome(future: asyncio.Future[Any], expired: bool) -> bool | BaseException:
        """True confirmed, False returned (unroutable), or the error (aiormq's
        ``DeliveryError`` for a nack)."""
        if future.cancelled():
            if expired:
                return TimeoutError("no confirm from the broker yet")
            return aiormq.exceptions.ChannelInvalidStateError("the publish was cancelled")
        exc = future.exception()
        if exc is None:
            return True
        if isinstance(exc, aiormq.exceptions.PublishError):
            return False
        return exc


class _Expiry:
    """Cancels the outcomes of one send still unanswered at its deadline (so a confirm that
    comes later is dropped by aiormq) and remembers that it did."""

    __slots__ = ("deadline", "expired", "futures")

    def __init__(self, futures: list[asyncio.Future[Any]], deadline: float) -> None:
        self.futures = futures
        self.deadline = deadline
        self.expired = False

    def expire(self) -> None:
        self.expired = True
        for future in self.futures:
            future.cancel()


class _Deadlines:
    """The sends under way and one timer for all their deadlines (`time.monotonic`).

    The timer is set for the earliest deadline known when it is set (or a newer, earlier
    one); when it fires it expires every send past its deadline and is set again for the
    earliest left. A send that ends is dropped at once, so a busy publisher's timer fires
    about once per publish timeout, not once per send.
    """

    def __init__(self) -> None:
        self._live: dict[_Expiry, None] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._at = float("inf")

    def add(self, expiry: _Expiry) -> None:
        self._live[expiry] = None
        if expiry.deadline < self._at:
            self._arm(expiry.deadline)

    def discard(self, expiry: _Expiry) -> None:
        self._live.pop(expiry, None)

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._at = at
        delay = max(0.01, at - time.monotonic())
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer, self._at = None, float("inf")
        now = time.monotonic()
        for expiry in [e for e in self._live if e.deadline <= now]:
            del self._live[expiry]
            expiry.expire()
        if self._live:
            self._arm(min(e.deadline for e in self._live))
