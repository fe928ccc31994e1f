"""The one seam of the pipeline: `Middleware`, the `Outcome` of a delivery, and the stacks
they are composed into.

A delivery goes down a stack of stages, outermost first: the user's middleware in list
order, then decode and validate, the dedupe claim, the retry policy, the handler timeout, and
the handler (with the messages its context held). Every stage returns an `Outcome`, a value;
the pipeline settles the delivery with the transport only after the outermost stage returned,
so a middleware can see the outcome of a failure and replace it.

Publishing is a stack too: each middleware's ``publish(message, call_next)`` wraps the real
publish, and ``call_next`` encodes, publishes and waits for the broker's confirm.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from .._codec.envelope import Envelope
from .._exceptions import ConfigError

if TYPE_CHECKING:
    from .context import Context
    from .messages import Message

__all__ = [
    "ConsumeNext",
    "ConsumeStack",
    "Middleware",
    "Outcome",
    "OutcomeKind",
    "Publication",
    "PublishNext",
    "PublishStack",
    "consume_stack",
    "publish_stack",
]

logger = logging.getLogger(__name__)

OutcomeKind = Literal["ack", "retry", "dead_letter", "duplicate", "postpone"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a delivery ends: a value the stages return, settled with the transport last.

    Build one with `Outcome.ack()`, `Outcome.retry(delay, error)`,
    `Outcome.dead_letter(reason, error)`, `Outcome.duplicate()` or
    `Outcome.postpone(delay, reason)`.

    Attributes:
        kind: ``"ack"`` (done), ``"retry"`` (again after `delay` seconds, attempt counted),
            ``"dead_letter"`` (to the group's dead-letter queue with `reason`) or
            ``"duplicate"`` (already processed: acknowledged without running the handler),
            or ``"postpone"`` (again after `delay` seconds, the attempt not counted).
        error: the exception behind a retry or a dead letter, if any.
        delay: seconds before the retry (retries and postponements only).
        reason: one line saying why it failed (set for dead letters; for retries, made from
            `error` when not given).
    """

    kind: OutcomeKind
    error: BaseException | None = None
    delay: float | None = None
    reason: str | None = None

    @classmethod
    def ack(cls) -> Outcome:
        """Processed: acknowledge the delivery."""
        return _ACK

    @classmethod
    def duplicate(cls) -> Outcome:
        """Already processed (idempotency): acknowledge without running the handler."""
        return _DUPLICATE

    @classmethod
    def retry(cls, delay: float, error: BaseException | None = None) -> Outcome:
        """Deliver again after `delay` seconds, as the next attempt.

        Args:
            delay: seconds before the delivery is available again (0 for at once).
            error: the exception that caused it; its type and text make the `reason`.

        Raises:
            ConfigError: a negative, infinite or non-numeric `delay`.
        """
        reason = _describe(error) if error is not None else "retry requested"
        return cls("retry", error=error, delay=_check_delay("retry", delay), reason=reason)

    @classmethod
    def postpone(cls, delay: float, reason: str) -> Outcome:
        """Deliver again after `delay` seconds without counting an attempt: the delivery
        could not be tried now for a reason outside the handler (another copy of the event
        is being processed, the dedupe store is down).

        Raises:
            ConfigError: a negative, infinite or non-numeric `delay`, or an empty `reason`.
        """
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError("Outcome.postpone needs a reason: one line saying why")
        return cls("postpone", delay=_check_delay("postpone", delay), reason=reason)

    @classmethod
    def dead_letter(cls, reason: str, error: BaseException | None = None) -> Outcome:
        """Move the delivery to its group's dead-letter queue, saying why.

        Args:
            reason: one line a person reads in ``tidings dlq list``.
            error: the exception that caused it, recorded with its traceback.

        Raises:
            ConfigError: an empty `reason`.
        """
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError("Outcome.dead_letter needs a reason: one line saying why")
        return cls("dead_letter", error=error, reason=reason)

    @property
    def succeeded(self) -> bool:
        """True for ``ack`` and ``duplicate``: the delivery needs no further run."""
        return self.kind in ("ack", "duplicate")


_ACK = Outcome("ack")
_DUPLICATE = Outcome("duplicate")


def _check_delay(what: str, delay: object) -> float:
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not math.isfinite(delay):
        raise ConfigError(f"Outcome.{what}: delay must be a finite number, not {delay!r}")
    if delay < 0:
        raise ConfigError(f"Outcome.{what}: delay must not be negative, not {delay!r}")
    return float(delay)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass(frozen=True, slots=True)
class Publication:
    """One message on its way to the broker, as a publish middleware sees it.

    Replace parts with `replace` (e.g. ``message.replace(envelope=...)`` to add trace
    context) and hand the result to ``call_next``.

    Attributes:
        envelope: the CloudEvents attributes it will carry.
        message: the event or command (a pydantic model) whose JSON is the data.
        key: ordering/partition key, if any.
        to: the group a command is sent to; None for an event published to every group.
        headers: extra transport headers, if any.
        delay: seconds before it becomes available to consumers, if any.
        reply_to: for a request (`Bus.request`), the reply inbox its answer goes to.
    """

    envelope: Envelope
    message: Message
    key: str | None = None
    to: str | None = None
    headers: Mapping[str, str] | None = None
    delay: float | None = None
    data_json: bytes | None = field(default=None, repr=False, compare=False)
    reply_to: str | None = None

    @property
    def id(self) -> str:
        """The event id (``envelope.id``)."""
        return self.envelope.id

    @property
    def type(self) -> str:
        """The event type, which is the routing key (``envelope.type``)."""
        return self.envelope.type

    def replace(self, **changes: Any) -> Publication:
        """A copy with `changes` applied (a new `message` is serialized anew)."""
        if "message" in changes:
            changes.setdefault("data_json", None)
        return replace(self, **changes)


ConsumeNext = Callable[..., Awaitable[Outcome]]
"""``call_next`` of a consume middleware: ``await call_next()`` (or ``call_next(ctx)``) runs
the rest of the stack and returns its `Outcome`; it never raises."""
PublishNext = Callable[..., Awaitable[str]]
"""``call_next`` of a publish middleware: ``await call_next(message)`` publishes and waits for
the confirm, returning the event id; it raises what the publish raised."""
ConsumeStack = Callable[["Context"], Awaitable[Outcome]]
PublishStack = Callable[[Publication], Awaitable[str]]


class Middleware:
    """Code that wraps every delivery a bus consumes and every message it publishes.

    Subclass it and override either method (or both); give instances to
    ``Bus(middleware=[...])``, outermost first::

        class Forgive(Middleware):
            async def consume(self, ctx, call_next):
                outcome = await call_next()
                if outcome.kind == "dead_letter" and ctx.envelope.type == "audit.noted":
                    return Outcome.ack()        # replace the outcome
                return None                     # None: the inner outcome stands

    `consume` may return None to let the inner outcome stand. A middleware that raises is
    logged and the inner outcome stands (when the rest of the stack never ran, the
    exception counts as a failed attempt). Objects that are not subclasses but have
    ``consume``/``publish`` coroutines of the same shape work too.
    """

    async def consume(self, ctx: Context, call_next: ConsumeNext) -> Outcome | None:
        """Wrap one delivery: run ``await call_next()`` to go on, return an `Outcome` to
        replace the one it gave, or None to keep it."""
        return await call_next(ctx)

    async def publish(self, message: Publication, call_next: PublishNext) -> str:
        """Wrap one publish: ``await call_next(message)`` (or a replaced message) publishes
        it and returns the event id once the broker confirmed it."""
        return await call_next(message)

    def bind(self, bus: Any) -> None:
        """Called once by each `Bus` the middleware is given to, when it is made, with that
        bus (its ``url``, ``name``, ``stats()``...). The default does nothing."""


def _overrides(mw: object, method: str) -> bool:
    """Whether `mw` takes part in the `method` stack (a `Middleware` that does not override
    it does not, so an unused hook costs nothing)."""
    if isinstance(mw, Middleware):
        return getattr(type(mw), method) is not getattr(Middleware, method)
    return callable(getattr(mw, method, None))


def check_middleware(middleware: Sequence[object], bus: Any = None) -> None:
    """Refuse, with a `ConfigError`, an object that has neither hook; then `bind` each to
    `bus`, when given."""
    for mw in middleware:
        if not (_overrides(mw, "consume") or _overrides(mw, "publish")):
            raise ConfigError(
                f"middleware {mw!r} has neither a consume nor a publish method: "
                "subclass tidings.Middleware"
            )
    if bus is not None:
        for mw in middleware:
            bind = getattr(mw, "bind", None)
            if callable(bind):
                bind(bus)


OnError = Callable[["Context", Exception], Outcome]


def consume_stack(
    middleware: Sequence[object], inner: ConsumeStack, on_error: OnError
) -> ConsumeStack:
    """Wrap `inner` in the consume hooks of `middleware`, the first one outermost.

    `on_error` turns an exception a middleware raised before the rest of the stack gave an
    outcome into one (the retry policy), so the stack never raises.
    """
    stack = inner
    for mw in reversed([m for m in middleware if _overrides(m, "consume")]):
        stack = _consume_link(mw, stack, on_error)
    return stack


def _consume_link(mw: Any, inner: ConsumeStack, on_error: OnError) -> ConsumeStack:
    hook = mw.consume
    name = type(mw).__qualname__

    async def step(ctx: Context) -> Outcome:
        got: Outcome | None = None

        async def call_next(new_ctx: Context | None = None) -> Outcome:
            nonlocal got
            got = await inner(ctx if new_ctx is None else new_ctx)
            return got

        try:
            result = await hook(ctx, call_next)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if got is not None:
                logger.exception("middleware %s raised on %r; the inner outcome stands", name, ctx)
                return got
            logger.warning("middleware %s raised on %r before the handler ran", name, ctx)
            return on_error(ctx, exc)
        if isinstance(result, Outcome):
            return result
        if result is not None:
            logger.error(
                "middleware %s returned %r, not an Outcome or None; the inner outcome stands",
                name,
                result,
            )
        # None passes the inner outcome through; a middleware that never called call_next
        # and returned None has handled the delivery itself (acknowledged, as in 0.1).
        return got if got is not None else _ACK

    return step


def publish_stack(middleware: Sequence[object], inner: PublishStack) -> PublishStack:
    """Wrap `inner` (the real publish) in the publish hooks of `middleware`, first
    outermost."""
    stack = inner
    for mw in reversed([m for m in middleware if _overrides(m, "publish")]):
        stack = _publish_link(mw, stack)
    return stack


def _publish_link(mw: Any, inner: PublishStack) -> PublishStack:
    hook = mw.publish

    async def step(message: Publication) -> str:
        sent: str | None = None

        async def call_next(new: Publication | Envelope | None = None) -> str:
            nonlocal sent
            if new is None:
                new = message
            elif isinstance(new, Envelope):  # 0.1 hooks passed the envelope on
                new = message.replace(envelope=new)
            sent = await inner(new)
            return sent

        result = await hook(message, call_next)
        if isinstance(result, str):
            return result
        # A hook that returned something else (0.1 hooks returned call_next's value as it
        # was then) still published: the id stands. One that never called call_next
        # dropped the message on purpose.
        return sent if sent is not None else message.id

    return step
