"""The built-in stages of the consume pipeline, innermost last.

Each stage is called with the delivery's `Context` and returns an `Outcome`; it calls the
next stage to go on. Decode-and-validate, the dedupe claim and the retry policy may answer
without going on; the retry policy turns every exception of the stages inside it into an
outcome, so nothing below the user's middleware raises (but a cancellation, which is a
shutdown or a timeout, goes through).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from .._exceptions import Permanent
from ..transports import Delivery
from .context import Context
from .messages import Message
from .middleware import ConsumeStack, Outcome
from .retry import Retry
from .subscription import Group, Handler
from .upcasting import UpcastError, registry, version_of
from .watchdog import Watchdog

__all__ = [
    "Decoded",
    "Inbox",
    "Invoke",
    "Postponed",
    "RetryPolicy",
    "Stage",
    "Timeout",
    "Transactions",
    "Validate",
    "chain",
    "outcome_of_failure",
]

logger = logging.getLogger(__name__)

_DEFAULT_RETRY = Retry()
_ACK = Outcome.ack()

Flush = Callable[[Context], Awaitable[None]]

T = TypeVar("T")


class Transactions(Protocol):
    """Runs a transactional handler in the inbox transaction (the bus's outbox)."""

    async def run_transaction(
        self,
        group: str,
        event_id: str,
        *,
        replayed: bool,
        body: Callable[[Any], Awaitable[T]],
        duplicate: Callable[[], T],
        busy: Callable[[str], T],
    ) -> T:
        """Run `body(session)` in a transaction holding the inbox row of the event, and
        commit; ``duplicate()`` when the event was handled, ``busy(reason)`` when the
        database cannot take the row now."""
        ...


@dataclass(slots=True)
class Decoded:
    """What the stages know of one delivery, kept on its context.

    Attributes:
        delivery: the transport's delivery, settled at the end.
        data: the decoded data (JSON), before validation.
        problem: why the message could not be decoded, if it could not.
        error: the decoding exception, if any.
        handler: the group's handler for the event type, once chosen.
        event: the data validated into the handler's type.
        ran: True once the handler returned.
        result: what the handler returned (the reply, for a request).
    """

    delivery: Delivery
    data: Any
    problem: str | None = None
    error: BaseException | None = None
    handler: Handler | None = None
    event: Any = None
    ran: bool = False
    result: Any = None


class Stage(abc.ABC):
    """One built-in stage; `chain` sets `next` to the stage inside it."""

    next: ConsumeStack

    @abc.abstractmethod
    async def __call__(self, ctx: Context) -> Outcome:
        """Handle the delivery, going on with ``await self.next(ctx)`` or answering."""


def chain(stages: Sequence[Stage]) -> ConsumeStack:
    """Link `stages` (outermost first, the last one terminal); return the outermost."""
    for outer, inner in zip(stages, stages[1:], strict=False):
        outer.next = inner
    return stages[0]


class Postponed(Exception):
    """Raised inside the stack to try the delivery again after `delay` seconds without
    counting an attempt (a saga transition that kept losing races)."""

    def __init__(self, reason: str, delay: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def outcome_of_failure(
    ctx: Context, exc: BaseException, rng: random.Random | None = None
) -> Outcome:
    """The retry policy: dead-letter `Permanent` failures, errors the handler's `Retry`
    does not retry, and the last attempt; otherwise retry after a full-jitter back-off
    (`Postponed` is tried again later, uncounted)."""
    work = ctx._work
    handler = work.handler if isinstance(work, Decoded) else None
    retry = handler.retry if handler is not None else _DEFAULT_RETRY
    if isinstance(exc, Postponed):
        return Outcome.postpone(exc.delay, exc.reason)
    if isinstance(exc, Permanent):
        return Outcome.dead_letter(f"permanent failure: {_describe(exc)}", exc)
    if not retry.retryable(exc):
        return Outcome.dead_letter(f"not retried: {_describe(exc)}", exc)
    if ctx.attempt >= retry.attempts:
        reason = f"failed {ctx.attempt} of {retry.attempts} attempts: {_describe(exc)}"
        return Outcome.dead_letter(reason, exc)
    return Outcome.retry(retry.delay(ctx.attempt, rng), exc)


class Validate(Stage):
    """Decode, choose the group's handler for the type, upcast the data to the version of
    the handler's model (`tidings.schemas`), validate it into its type; dead-letter what
    fails, with the reason. A handler needing an upcaster that is missing is a `ConfigError`
    when the group starts."""

    def __init__(self, group: Group) -> None:
        self.group = group
        for handler in group.handlers:
            version = version_of(handler.model)
            if version is not None:
                where = f"handler {handler.name} of group {group.name!r}"
                registry.check(getattr(handler.model, "__message_type__", ""), version, where)

    async def __call__(self, ctx: Context) -> Outcome:
        work: Decoded = ctx._work
        if work.problem is not None:
            return Outcome.dead_letter(f"undecodable message: {work.problem}", work.error)
        handler = self.group.handler_for(ctx.envelope.type)
        if handler is None:
            reason = f"no handler in group {self.group.name!r} for event type {ctx.envelope.type!r}"
            return Outcome.dead_letter(reason)
        work.handler = handler
        data = work.data
        target = version_of(handler.model, ctx.envelope.type)
        if target is not None:
            try:
                data = registry.upcast(ctx.envelope.type, ctx.envelope.dataversion, target, data)
            except UpcastError as exc:
                return Outcome.dead_letter(str(exc), exc)
        try:
            work.event = handler.validate(data)
        except ValidationError as exc:
            errors = exc.errors()
            where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
            detail = errors[0]["msg"] if errors else str(exc)
            reason = (
                f"invalid data for {ctx.envelope.type!r}: {where or 'data'}: {detail} "
                f"({exc.error_count()} error(s))"
            )
            return Outcome.dead_letter(reason, exc)
        return await self.next(ctx)


class RetryPolicy(Stage):
    """The inner edge: an exception of any stage inside becomes an outcome."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    async def __call__(self, ctx: Context) -> Outcome:
        try:
            return await self.next(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return outcome_of_failure(ctx, exc, self.rng)


class Inbox(Stage):
    """Transactional handlers: run the rest of the stack in a database transaction that
    also holds the event's inbox row, and commit it before the delivery is acknowledged.

    The handler gets the session as ``ctx.session``; what it publishes through its context
    is staged in the outbox in the same transaction. An event whose row exists is a
    duplicate, acknowledged without running. A failure rolls back every write and
    propagates (the retry policy outside turns it into an outcome). A database that cannot
    take the row postpones the delivery, uncounted. Replays run again."""

    busy_delay = 5.0
    """Seconds a delivery waits when the inbox cannot be written."""

    def __init__(self, transactions: Transactions) -> None:
        self.transactions = transactions

    async def __call__(self, ctx: Context) -> Outcome:
        handler = ctx._work.handler
        if handler is None or not handler.transactional:
            return await self.next(ctx)

        async def inside(session: Any) -> Outcome:
            ctx._session = session
            try:
                return await self.next(ctx)
            finally:
                ctx._session = None

        return await self.transactions.run_transaction(
            ctx.group,
            ctx.event_id,
            replayed=ctx.replayed,
            body=inside,
            duplicate=Outcome.duplicate,
            busy=self._busy,
        )

    def _busy(self, reason: str) -> Outcome:
        return Outcome.postpone(self.busy_delay, reason)


class Timeout(Stage):
    """A handler running past its `timeout` is cancelled; the attempt fails with
    `TimeoutError`. One watchdog timer per group, not one per delivery."""

    def __init__(self) -> None:
        self.watchdog = Watchdog()

    async def __call__(self, ctx: Context) -> Outcome:
        handler = ctx._work.handler
        timeout = handler.timeout if handler is not None else None
        if timeout is None:
            return await self.next(ctx)
        task = asyncio.current_task()
        assert task is not None
        self.watchdog.watch(task, timeout)
        try:
            return await self.next(ctx)
        except asyncio.CancelledError:
            if self.watchdog.expired(task) and task.uncancel() == 0:
                raise TimeoutError(f"handler timed out after {timeout:g}s") from None
            raise
        finally:
            self.watchdog.forget(task)

    async def close(self) -> None:
        await self.watchdog.close()


class Invoke(Stage):
    """The handler, then the messages it published through its context (sent before the
    delivery is acknowledged, inside the stack)."""

    def __init__(self, flush: Flush) -> None:
        self.flush = flush

    async def __call__(self, ctx: Context) -> Outcome:
        work: Decoded = ctx._work
        handler = work.handler
        assert handler is not None
        if handler.wants_context:
            result = await handler.func(work.event, ctx)
        else:
            result = await handler.func(work.event)
        if work.delivery.reply_to is not None:
            if result is not None and not isinstance(result, Message):
                return Outcome.dead_letter(
                    f"handler {handler.name} answered a request with a "
                    f"{type(result).__name__}, not a tidings Event or Command (or None)"
                )
            work.ran, work.result = True, result
        if ctx._out:
            await self.flush(ctx)
        return _ACK
