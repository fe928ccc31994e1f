"""The consume pipeline of one group: a stack of stages, then one settle.

A transport's consumer calls the `Pipeline` for each delivery. The pipeline decodes the
envelope into a `Context`, runs the stack (the user's middleware, then the built-in stages of
`stages`), and settles the delivery with exactly the `Outcome` the outermost stage returned:
the only code that calls the transport's ``ack``, ``retry_later``, ``postpone`` and
``dead_letter``. A
cancelled delivery (shutdown) is not settled: the transport returns it to the group.
"""

from __future__ import annotations

import logging
import random
import traceback
from collections.abc import Sequence

from .._clock import Clock
from .._codec.cloudevents import decode, foreign_id
from .._codec.envelope import DecodeError, Envelope
from ..transports import DedupeStore, Delivery, Failure, Transport
from .claim import Claim
from .context import Context
from .middleware import Outcome, consume_stack
from .replies import Answers
from .stages import (
    Decoded,
    Flush,
    Inbox,
    Invoke,
    RetryPolicy,
    Stage,
    Timeout,
    Transactions,
    Validate,
    chain,
    outcome_of_failure,
)
from .subscription import Group

__all__ = ["Pipeline", "failure_from"]

logger = logging.getLogger(__name__)

_ACK = Outcome.ack()
_MAX_REASON = 500
_MAX_TRACEBACK = 4000


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


class Pipeline:
    """Runs one group's deliveries through the stack and settles each with its outcome."""

    def __init__(
        self,
        group: Group,
        *,
        transport: Transport,
        dedupe: DedupeStore | None,
        dedupe_ttl: float,
        middleware: Sequence[object],
        flush: Flush,
        clock: Clock,
        source: str,
        rng: random.Random | None = None,
        transactions: Transactions | None = None,
        claim_lease: float = 30.0,
        answers: Answers | None = None,
    ) -> None:
        self.group = group
        self.answers = answers
        self.transport = transport
        self.clock = clock
        self.source = source
        self.rng = rng or random.Random()
        self._timeout = Timeout()
        self._claim: Claim | None = None
        stages: list[Stage] = [Validate(group)]
        if dedupe is not None:
            self._claim = Claim(group.name, dedupe, dedupe_ttl, clock.time, claim_lease)
            stages.append(self._claim)
        stages.append(RetryPolicy(self.rng))
        if transactions is not None and group.transactional:
            stages.append(Inbox(transactions))
        stages += [self._timeout, Invoke(flush)]
        self._stack = consume_stack(middleware, chain(stages), self._on_middleware_error)

    def _on_middleware_error(self, ctx: Context, exc: Exception) -> Outcome:
        return outcome_of_failure(ctx, exc, self.rng)

    async def __call__(self, delivery: Delivery) -> None:
        ctx = self._context(delivery)
        outcome = await self._stack(ctx)
        if delivery.reply_to is not None and self.answers is not None:
            await self._answer(ctx, outcome, delivery.reply_to, self.answers)
        if outcome is _ACK:  # the common case, without another call
            if not self.transport.ack_soon(delivery):
                await self.transport.ack(delivery)
            return
        await self._settle(ctx, outcome)

    def _context(self, delivery: Delivery) -> Context:
        work = Decoded(delivery, None)
        try:
            envelope, work.data = decode(
                routing_key=delivery.type,
                body=delivery.body,
                content_type=delivery.content_type,
                headers=delivery.headers,
                message_id=delivery.id,
                source=self.source,
            )
        except DecodeError as exc:
            # The stack still runs (middleware sees every delivery); Validate dead-letters it.
            work.problem, work.error = str(exc), exc
            event_id = delivery.id or foreign_id(delivery.type, delivery.body)
            envelope = Envelope(id=event_id, source=self.source, type=delivery.type)
        ctx = Context(
            envelope=envelope,
            group=self.group.name,
            attempt=delivery.attempt,
            key=delivery.key,
            headers=delivery.headers,
            replayed=delivery.replayed,
        )
        ctx._work = work
        return ctx

    async def _answer(self, ctx: Context, outcome: Outcome, to: str, answers: Answers) -> None:
        """Reply to a request before it is settled: what the handler returned once it
        succeeded, a failure once it is dead-lettered; nothing while it is retried."""
        work: Decoded = ctx._work
        if outcome.kind == "ack" and work.ran:
            reply = answers.of_result(ctx.envelope, work.result)
        elif outcome.kind == "dead_letter":
            failure = failure_from(outcome.error, outcome.reason or "failed", self.clock.time())
            reply = answers.of_failure(ctx.envelope, failure)
        else:
            return
        await answers.send(to, reply, ctx.envelope)

    async def _settle(self, ctx: Context, outcome: Outcome) -> None:
        delivery: Delivery = ctx._work.delivery
        kind = outcome.kind
        if kind == "ack" or kind == "duplicate":
            if kind == "duplicate":
                logger.debug(
                    "skip duplicate %s %s in %s", ctx.envelope.type, ctx.event_id, ctx.group
                )
            if not self.transport.ack_soon(delivery):
                await self.transport.ack(delivery)
            return
        if kind == "postpone":
            logger.debug(
                "postponed %s %s in %s for %.2fs: %s",
                ctx.envelope.type,
                ctx.event_id,
                ctx.group,
                outcome.delay or 0.0,
                outcome.reason,
            )
            await self.transport.postpone(delivery, outcome.delay or 0.0)
            return
        reason = outcome.reason or "failed"
        failure = failure_from(outcome.error, reason, self.clock.time())
        if kind == "retry":
            delay = outcome.delay or 0.0
            handler = ctx._work.handler
            of = f" of {handler.retry.attempts}" if handler is not None else ""
            logger.warning(
                "%s %s failed in %s (attempt %d%s), retrying in %.2fs: %s",
                ctx.envelope.type,
                ctx.event_id,
                ctx.group,
                ctx.attempt,
                of,
                delay,
                failure.reason,
            )
            await self.transport.retry_later(delivery, delay, failure)
            return
        logger.error(
            "dead-lettered %s %s in %s after %d attempt(s): %s",
            ctx.envelope.type,
            ctx.event_id or delivery.id,
            ctx.group,
            ctx.attempt,
            failure.reason,
        )
        await self.transport.dead_letter(delivery, failure)

    async def close(self) -> None:
        """Release the pipeline's background timers (the handler timeout, claim renewal)."""
        await self._timeout.close()
        if self._claim is not None:
            await self._claim.close()
