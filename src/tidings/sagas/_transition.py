"""One transition of a saga instance, without a database: which instance an event concerns,
whether its step runs, and the instance after it.

The store (`tidings.sagas._store`) persists what this computes, and `SagaScenario` runs it in
memory, so a scenario tests the rules the bus applies: a start event creates the instance and
is ignored once it exists; another event needs the instance (``missing`` otherwise); a
completed instance ignores everything; a timeout runs only while its token is pending; a
stored state that no longer validates is ``invalid``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import ValidationError

from ..transports._routing import matches
from ._context import PendingTimeout, SagaContext
from ._definition import Saga, SagaDefinition, Step

__all__ = ["HISTORY", "SagaInstance", "Transition", "step_for", "transition"]

HISTORY = 50
"""The transitions kept in an instance's history (the oldest are dropped)."""

Verdict = Literal["ran", "ignored", "missing", "invalid", "conflict"]


@dataclass(frozen=True, slots=True)
class SagaInstance:
    """One saga instance as its row holds it (what ``tidings sagas show`` prints).

    Attributes:
        key: its key.
        version: bumped by every transition (0: not stored yet).
        status: its status (its ``status`` field, ``running``, or the completion status).
        state: its fields, as JSON data.
        timeouts: its pending timeouts, by token.
        history: its last transitions (``event``, ``from``, ``to``, ``at``), oldest first.
        started_at: when it was created (epoch seconds).
        updated_at: when it last changed.
        completed_at: when it completed, or None.
    """

    key: str
    version: int
    status: str
    state: dict[str, Any]
    timeouts: dict[str, PendingTimeout] = field(default_factory=dict)
    history: tuple[dict[str, Any], ...] = ()
    started_at: float = 0.0
    updated_at: float = 0.0
    completed_at: float | None = None

    @property
    def completed(self) -> bool:
        return self.completed_at is not None


@dataclass(frozen=True, slots=True)
class Transition:
    """What an event did to an instance.

    Attributes:
        verdict: ``ran`` (the step ran; `instance` is the new one), ``ignored`` (`reason`
            says why), ``missing`` (no instance for a non-start event) or ``invalid`` (the
            stored state did not validate; `reason` says how).
        key: the instance's key.
        instance: the instance after the step (when it ran).
        before: the instance before it (None for a new one).
        context: the step's context: what it sent, scheduled, and whether it completed.
        saga: the saga object after the step.
    """

    verdict: Verdict
    key: str
    reason: str = ""
    instance: SagaInstance | None = None
    before: SagaInstance | None = None
    context: SagaContext | None = None
    saga: Saga | None = None


def step_for(definition: SagaDefinition, event_type: str) -> Step | None:
    """The step whose pattern matches `event_type`, if any."""
    return next((s for s in definition.steps if matches(s.pattern, event_type)), None)


def _load(definition: SagaDefinition, instance: SagaInstance) -> Saga | str:
    try:
        saga = definition.cls.model_validate(instance.state)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else None
        where = ".".join(str(p) for p in first["loc"]) if first else "state"
        detail = first["msg"] if first else str(exc)
        return (
            f"the stored state of saga {definition.name!r} {instance.key!r} is invalid: "
            f"{where or 'state'}: {detail} ({exc.error_count()} error(s))"
        )
    return saga


def _gate(
    step: Step, instance: SagaInstance | None, token: str | None
) -> tuple[Verdict, str] | None:
    """Why the event does not run its step on `instance`, or None when it does."""
    if instance is None:
        if token is not None:
            return "ignored", "a timeout of an instance that is gone"
        if not step.starts:
            return "missing", "no instance for this key"
        return None
    if instance.completed:
        return "ignored", f"the instance completed ({instance.status})"
    if token is not None:
        if token not in instance.timeouts:
            return "ignored", "a cancelled or stale timeout"
        return None
    if step.starts:
        return "ignored", "the instance exists already (a start event runs once)"
    return None


async def transition(
    definition: SagaDefinition,
    step: Step,
    instance: SagaInstance | None,
    event: Any,
    *,
    event_type: str,
    event_id: str,
    key: str,
    token: str | None,
    now: float,
) -> Transition:
    """Apply `event` (handled by `step`) to `instance` (None when there is none)."""
    gate = _gate(step, instance, token)
    if gate is not None:
        return Transition(gate[0], key, gate[1], before=instance)
    if instance is None:
        saga = definition.cls()
        pending: dict[str, PendingTimeout] = {}
    else:
        loaded = _load(definition, instance)
        if isinstance(loaded, str):
            return Transition("invalid", key, loaded, before=instance)
        saga = loaded
        pending = {t: v for t, v in instance.timeouts.items() if t != token}
    saga._key = key
    before = definition.status_of(saga) if instance is not None else None
    ctx = SagaContext(
        saga=definition.name,
        key=key,
        event_id=event_id,
        now=now,
        pending=pending,
        handles=lambda t: step_for(definition, t) is not None,
    )
    await step.func(saga, event, ctx)
    after = ctx.completed or definition.status_of(saga)
    entry = {"event": event_type, "from": before, "to": after, "at": now}
    base = instance or SagaInstance(key, 0, after, {}, started_at=now)
    new = replace(
        base,
        version=base.version + 1,
        status=after,
        state=saga.model_dump(mode="json"),
        timeouts=ctx.pending_timeouts,
        history=(*base.history, entry)[-HISTORY:],
        updated_at=now,
        completed_at=now if ctx.completed else None,
    )
    return Transition("ran", key, instance=new, before=instance, context=ctx, saga=saga)
