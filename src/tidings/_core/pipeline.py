"""The consume pipeline: decode → validate → dedupe → middleware → handler → settle.

One `Pipeline` runs per group. It is the callback a transport's consumer calls for each
delivery, and it always settles the delivery with exactly one of ack, retry_later or
dead_letter — unless it is cancelled (shutdown), in which case the transport returns the
delivery to the group.
"""

from __future__ import annotations

import asyncio
import logging
import random
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import ValidationError

from .._clock import Clock
from .._codec.cloudevents import decode
from .._codec.envelope import DecodeError, Envelope
from .._exceptions import Permanent
from ..transports._failure import Failure
from ..transports._message import Delivery
from ..transports._transport import DedupeStore, Transport
from .context import Context
from .subscription import Group, Handler
from .watchdog import Watchdog

__all__ = ["Pipeline", "build_chain", "failure_from"]

logger = logging.getLogger("tidings")

_MAX_REASON = 500
_MAX_TRACEBACK = 4000

Flush = Callable[[Context], Awaitable[None]]


def _one_line(text: str, limit: int = _MAX_REASON) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def failure_from(exc: BaseException | None, reason: str, at: float) -> Failure:
    """Record a failure: a one-line reason, the exception's type and message, a trimmed
    traceback (the last frames, at most a few KB)."""
    if exc is None:
        return Failure(_one_line(reason), None, reason, "", at)
    exc_type = type(exc)
    tb = "".join(traceback.format_exception(exc, limit=-8))
    if len(tb) > _MAX_TRACEBACK:
        tb = "…" + tb[-_MAX_TRACEBACK:]
    return Failure(
        reason=_one_line(reason),
        exception_type=f"{exc_type.__module__}.{exc_type.__qualname__}",
        message=str(exc),
        traceback=tb,
        at=at,
    )


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def build_chain(
    middleware: Sequence[Any], method: str, terminal: Callable[[Any], Awaitable[Any]]
) -> Callable[[Any], Awaitable[Any]]:
    """Compose middleware objects that have `method` around `terminal`.

    Each middleware is called as ``await mw.<method>(value, call_next)``; ``call_next`` takes
    the (possibly replaced) value, or nothing to pass it on unchanged.
    """
    chain = terminal
    for mw in reversed([m for m in middleware if hasattr(m, method)]):
        chain = _link(getattr(mw, method), chain)
    return chain


def _link(
    hook: Callable[[Any, Any], Awaitable[Any]], nxt: Callable[[Any], Awaitable[Any]]
) -> Callable[[Any], Awaitable[Any]]:
    async def step(value: Any) -> Any:
        async def call_next(new_value: Any = None) -> Any:
            return await nxt(value if new_value is None else new_value)

        return await hook(value, call_next)

    return step


class Pipeline:
    """Runs one group's deliveries through decode, validation, dedupe, middleware, handler
    and settlement."""

    def __init__(
        self,
        group: Group,
        *,
        transport: Transport,
        dedupe: DedupeStore | None,
        dedupe_ttl: float,
        middleware: Sequence[Any],
        flush: Flush,
        clock: Clock,
        source: str,
        rng: random.Random | None = None,
    ) -> None:
        self.group = group
        self.transport = transport
        self.dedupe = dedupe
        self.dedupe_ttl = dedupe_ttl
        self.flush = flush
        self.clock = clock
        self.source = source
        self.rng = rng or random.Random()
        self._chain = build_chain(middleware, "consume", self._invoke)
        self._current: dict[int, tuple[Handler, Any]] = {}
        self._watchdog = Watchdog()

    async def __call__(self, delivery: Delivery) -> None:
        try:
            envelope, data = decode(
                routing_key=delivery.type,
                body=delivery.body,
                content_type=delivery.content_type,
                headers=delivery.headers,
                message_id=delivery.id,
                source=self.source,
            )
        except DecodeError as exc:
            await self._dead(delivery, None, f"undecodable message: {exc}", exc)
            return
        handler = self.group.handler_for(envelope.type)
        if handler is None:
            reason = f"no handler in group {self.group.name!r} for event type {envelope.type!r}"
            await self._dead(delivery, envelope, reason, None)
            return
        try:
            event = handler.validate(data)
        except ValidationError as exc:
            errors = exc.errors()
            where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
            detail = errors[0]["msg"] if errors else str(exc)
            reason = (
                f"invalid data for {envelope.type!r}: {where or 'data'}: {detail} "
                f"({exc.error_count()} error(s))"
            )
            await self._dead(delivery, envelope, reason, exc)
            return
        if (
            handler.idempotent
            and not delivery.replayed
            and self.dedupe is not None
            and await self.dedupe.seen(self.group.name, envelope.id)
        ):
            logger.debug("skip duplicate %s %s in %s", envelope.type, envelope.id, self.group.name)
            await self.transport.ack(delivery)
            return
        ctx = Context(
            envelope=envelope,
            group=self.group.name,
            attempt=delivery.attempt,
            key=delivery.key,
            headers=delivery.headers,
            replayed=delivery.replayed,
        )
        self._current[id(ctx)] = (handler, event)
        try:
            if handler.timeout is not None:
                await self._call_with_timeout(ctx, handler.timeout)
            else:
                await self._chain(ctx)
            await self.flush(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._failed(delivery, envelope, handler, exc)
            return
        finally:
            self._current.pop(id(ctx), None)
        if handler.idempotent and self.dedupe is not None:
            await self.dedupe.mark(self.group.name, envelope.id, self.dedupe_ttl)
        if not self.transport.ack_soon(delivery):
            await self.transport.ack(delivery)
        logger.debug(
            "handled %s %s in %s (attempt %d)",
            envelope.type,
            envelope.id,
            self.group.name,
            delivery.attempt,
        )

    async def _call_with_timeout(self, ctx: Context, timeout: float) -> None:
        """Run the chain; past `timeout` seconds cancel it and raise `TimeoutError`."""
        task = asyncio.current_task()
        assert task is not None
        self._watchdog.watch(task, timeout)
        try:
            await self._chain(ctx)
        except asyncio.CancelledError:
            if self._watchdog.expired(task) and task.uncancel() == 0:
                raise TimeoutError(f"handler timed out after {timeout:g}s") from None
            raise
        finally:
            self._watchdog.forget(task)

    async def close(self) -> None:
        """Release the pipeline's background timer."""
        await self._watchdog.close()

    async def _invoke(self, ctx: Context) -> None:
        handler, event = self._current[id(ctx)]
        if handler.wants_context:
            await handler.func(event, ctx)
        else:
            await handler.func(event)

    async def _failed(
        self, delivery: Delivery, envelope: Envelope, handler: Handler, exc: BaseException
    ) -> None:
        retry = handler.retry
        if isinstance(exc, Permanent):
            await self._dead(delivery, envelope, f"permanent failure: {_describe(exc)}", exc)
        elif not retry.retryable(exc):
            await self._dead(delivery, envelope, f"not retried: {_describe(exc)}", exc)
        elif delivery.attempt >= retry.attempts:
            reason = f"failed {delivery.attempt} of {retry.attempts} attempts: {_describe(exc)}"
            await self._dead(delivery, envelope, reason, exc)
        else:
            delay = retry.delay(delivery.attempt, self.rng)
            failure = failure_from(exc, _describe(exc), self.clock.time())
            logger.warning(
                "%s %s failed in %s (attempt %d of %d), retrying in %.2fs: %s",
                envelope.type,
                envelope.id,
                self.group.name,
                delivery.attempt,
                retry.attempts,
                delay,
                failure.reason,
            )
            await self.transport.retry_later(delivery, delay, failure)

    async def _dead(
        self,
        delivery: Delivery,
        envelope: Envelope | None,
        reason: str,
        exc: BaseException | None,
    ) -> None:
        failure = failure_from(exc, reason, self.clock.time())
        logger.error(
            "dead-lettered %s %s in %s after %d attempt(s): %s",
            envelope.type if envelope else delivery.type,
            envelope.id if envelope else delivery.id,
            self.group.name,
            delivery.attempt,
            failure.reason,
        )
        await self.transport.dead_letter(delivery, failure)
