"""The bus's side of sagas: `add_saga` registers a saga's steps as transactional handlers of
a group named after it, and turns each transition into what the pipeline knows — the
messages the step sent (into the outbox, in the inbox transaction), a dead letter, a delivery
postponed — and reports completions to the middleware that counts them.

`tidings.sagas` (its persistence needs SQLAlchemy, an extra) is imported only when a saga is
added.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from .._exceptions import ConfigError, Permanent
from .context import Context, Pending
from .outbox_link import OutboxLink
from .retry import Retry
from .stages import Postponed
from .subscription import Group, HandlerFunc, HandlerOptions, registry_add

if TYPE_CHECKING:
    from ..sagas._definition import SagaDefinition, Step
    from ..sagas._runner import SagaRunner
    from ..sagas._transition import Transition

__all__ = ["TIMEOUT_HEADER", "SagaMetrics", "add_saga"]

logger = logging.getLogger(__name__)

TIMEOUT_HEADER = "tidings-saga-timeout"
"""The header carrying a scheduled message's timeout token back to its saga."""

CONFLICT_DELAY = 0.5
"""Seconds a delivery waits after every try of its transition lost a race."""

OnMissing = Literal["ignore", "dead_letter"]


@runtime_checkable
class SagaMetrics(Protocol):
    """Middleware that counts completed sagas (`tidings.observability.Prometheus` does)."""

    def saga_completed(self, saga_type: str, status: str, duration: float) -> None:
        """One instance of `saga_type` completed with `status` after `duration` seconds."""


def _runner(saga: Any, bus: str, now: Callable[[], float]) -> tuple[SagaDefinition, SagaRunner]:
    try:
        from ..sagas._definition import definition_of
        from ..sagas._runner import SagaRunner
    except ImportError as exc:
        raise ConfigError(
            f"sagas need SQLAlchemy ({exc.name or exc} is missing): pip install 'tidings[sql]'"
        ) from exc
    definition = definition_of(saga)
    return definition, SagaRunner(definition, bus=bus, now=now)


def add_saga(
    groups: dict[str, Group],
    link: OutboxLink,
    saga: Any,
    on_missing: OnMissing,
    retry: Retry | None,
    middleware: Sequence[object],
    now: Callable[[], float],
) -> None:
    """Register `saga`'s steps in a group named after it (see `Bus.add_saga`): they run as
    transactional handlers, the messages of its `middleware` that count completions
    (`SagaMetrics`) are told of each, and `now` is the bus's clock."""
    if link.engine is None:
        raise ConfigError(
            f"add_saga({getattr(saga, '__name__', saga)}) needs the application's database, "
            "where its instances live: Bus(database=...)"
        )
    if on_missing not in ("ignore", "dead_letter"):
        raise ConfigError(f"on_missing must be 'ignore' or 'dead_letter', not {on_missing!r}")
    definition, runner = _runner(saga, link.bus, now)
    if definition.name in groups:
        raise ConfigError(
            f"saga {definition.name!r}: a group of that name exists on this bus; "
            "a saga is a group of its own"
        )
    metrics = [m for m in middleware if isinstance(m, SagaMetrics)]
    options = HandlerOptions(group=definition.name, retry=retry, transactional=True)
    try:
        for step in definition.steps:
            handler = _handler(definition, step, runner, on_missing, metrics)
            registry_add(groups, step.pattern, handler, options)
    except BaseException:
        groups.pop(definition.name, None)
        raise
    link.sagas.append(definition.name)


def _handler(
    definition: SagaDefinition,
    step: Step,
    runner: SagaRunner,
    on_missing: OnMissing,
    metrics: Sequence[SagaMetrics],
) -> HandlerFunc:
    async def handle(event: Any, ctx: Context) -> None:
        done = await runner.run(
            ctx.session,
            step,
            event,
            event_type=ctx.envelope.type,
            event_id=ctx.event_id,
            key=ctx.key,
            token=ctx.headers.get(TIMEOUT_HEADER),
        )
        _settle(definition, done, ctx, on_missing, metrics, runner)

    handle.__annotations__ = {"event": step.model, "ctx": Context, "return": None}
    handle.__module__ = definition.cls.__module__
    handle.__qualname__ = f"{definition.cls.__qualname__}.{step.name}"
    return handle


def _settle(
    definition: SagaDefinition,
    done: Transition,
    ctx: Context,
    on_missing: OnMissing,
    metrics: Sequence[SagaMetrics],
    runner: SagaRunner,
) -> None:
    name, event_type = definition.name, ctx.envelope.type
    if done.verdict == "conflict":
        raise Postponed(done.reason, CONFLICT_DELAY)
    if done.verdict == "invalid":
        raise Permanent(done.reason)
    if done.verdict == "missing":
        reason = f"saga {name!r} has no instance {done.key!r} for {event_type!r}"
        if on_missing == "dead_letter":
            raise Permanent(reason)
        logger.info("%s: ignored %s", reason, ctx.event_id)
        return
    if done.verdict == "ignored":
        logger.debug("saga %s %r ignored %s: %s", name, done.key, event_type, done.reason)
        return
    assert done.context is not None and done.instance is not None
    for out in done.context.messages:
        headers = {TIMEOUT_HEADER: out.token} if out.token is not None else None
        ctx._out.append(Pending(out.message, out.id, out.key, out.to, headers, out.delay))
    status = done.context.completed
    if status is not None and metrics:
        duration = max(0.0, done.instance.updated_at - done.instance.started_at)

        def report() -> None:
            for m in metrics:
                try:
                    m.saga_completed(name, status, duration)
                except Exception:
                    logger.warning("saga metrics of %r failed", name, exc_info=True)

        runner.after_commit(ctx.session, report)
